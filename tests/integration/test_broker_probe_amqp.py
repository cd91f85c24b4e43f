"""The recovery sweep's count of waiting messages on RabbitMQ: a passive `queue_declare` answers the
queue's `message_count` (ready messages of every priority), and a queue that does not exist counts 0
(on Redis the same probe adds up the priority lists: test_resends.py)."""

from __future__ import annotations

import pytest

from orchestrator import catalog, scheduling
from orchestrator.instances import InstanceRequest, create_instance
from workers import broker_probe, dispatch


def _queued(db, name: str, priority: str) -> list:
    catalog.save_definition(
        db, {"name": name, "version": "1.0.0", "nodes": [{"id": "n", "type": "task", "executor": "noop"}]}
    )
    instance_id = create_instance(db, InstanceRequest(name, start=False, priority=priority)).instance_id
    return scheduling.start(db, instance_id).dispatches


@pytest.mark.parametrize("broker_url", ["amqp"], indirect=True)
def test_the_probe_counts_the_messages_waiting_on_a_rabbitmq_queue_of_any_priority(db, broker_url):
    assert broker_probe.count_waiting(["default"]) == {"default": 0}  # no such queue yet
    dispatch.send_nodes(_queued(db, "probe-low", "low") + _queued(db, "probe-top", "critical"))
    dispatch.send_nodes(_queued(db, "probe-normal", "normal"))

    assert broker_probe.count_waiting(["default", "nowhere"]) == {"default": 3, "nowhere": 0}

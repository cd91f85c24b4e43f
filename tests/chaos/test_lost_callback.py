"""A callback whose `notify` message was lost (with the broker, or held by a killed worker) is still
delivered: the delivery is stored with the instance's end, and the sweep resends it when overdue."""

from __future__ import annotations

import pytest

from tests.acceptance.helpers import define, run_here, start
from tests.support.callbacks import CallbackServer
from tests.support.services import wait_for

WORKFLOW = {
    "name": "lost-callback",
    "version": "1.0.0",
    "nodes": [{"id": "a", "type": "task", "executor": "noop"}],
}


@pytest.mark.egress_allow("127.0.0.1/32")  # the callback endpoint is a local listener
def test_a_callback_whose_message_was_lost_is_delivered_by_the_sweep(db, live_api, processes):
    with CallbackServer() as hooks:
        define(live_api, WORKFLOW)
        instance_id = start(live_api, "lost-callback", callbackUrl=hooks.url, start=False)
        assert run_here(db, instance_id).finished is not None  # ended; its `notify` never sent
        assert live_api.get(f"/api/v1/instances/{instance_id}").json()["status"] == "completed"

        processes.worker("w1")
        processes.beat()
        body = wait_for(lambda: hooks.received and hooks.received[0], 30, "the callback")
        assert body["instance"]["id"] == instance_id and body["instance"]["status"] == "completed"
        assert hooks.posts == 1

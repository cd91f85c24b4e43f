"""The services go away under running workflows: Redis is killed and started again empty (every
message it held is lost), a RabbitMQ node is killed and started again on its data, and every MySQL
connection of the workers is killed. Workers reconnect,
the sweep resends what was lost, and every instance completes with each node committed once."""

from __future__ import annotations

import re

from orchestrator.instances import InstanceRequest, create_instance
from tests.acceptance.helpers import define
from tests.chaos import helpers
from tests.support.fixtures import MYSQL_URL
from tests.support.services import wait_for

INSTANCES = 16
TOTAL = 10
KILL_ROUNDS = 5
# What a worker logs once it has tried the dead broker: its consumer ("Connection to broker lost"),
# or, while its consumer waits for busy pool processes, a pool process that could not publish.
TRIED_DEAD_BROKER = re.compile(r"Connection to broker lost|Error 111 connecting to")
CHAIN = {
    "name": "chaos-chain",
    "version": "1.0.0",
    "nodes": [
        {
            "id": "fetch",
            "type": "task",
            "executor": "tests.work",
            "config": {"min": 0.1, "max": 0.3},
            # an executor's own database write can die with its connection: that is a retry
            "retries": 3,
            "retryDelay": 200,
        },
        {
            "id": "copy",
            "type": "task",
            "executor": "tests.steps",
            "dependsOn": ["fetch"],
            "config": {"total": TOTAL, "delay": 0.1},
            "retries": 3,
            "retryDelay": 200,
        },
        {
            "id": "store",
            "type": "task",
            "executor": "tests.work",
            "dependsOn": ["copy"],
            "config": {"min": 0.1, "max": 0.3},
            "retries": 3,
            "retryDelay": 200,
        },
    ],
}


def _create(db, count: int) -> list[str]:
    """Instances written to MySQL in this process; their `schedule` messages are sent separately."""
    return [create_instance(db, InstanceRequest(workflow=CHAIN["name"])).instance_id for _ in range(count)]


def _completed_nodes(db, instance_ids: list[str]) -> int:
    return sum(1 for row in helpers.node_rows(db, instance_ids).values() if row.status == "completed")


def _next_commit(db, instance_ids: list[str], last: int, nodes: int) -> int:
    """The completed-node count once it has passed `last` (or every node is done), else 0."""
    done = _completed_nodes(db, instance_ids)
    return done if done > last or done == nodes else 0


def _restart_when_every_worker_lost_it(
    db, broker, workers, instance_ids, lost: re.Pattern, name: str
) -> float:
    """Start the killed broker again once every worker has run into it (not merely after a while);
    record and return the seconds until a node is claimed again."""
    every_worker_lost_it = lambda: all(lost.search(w.log_text()) for w in workers.values())  # noqa: E731
    wait_for(every_worker_lost_it, 30, "both workers to lose the broker")
    broker.start()
    restarted_at = helpers.now()

    def claimed_since_restart() -> list:
        return [r for r in helpers.log_rows(db, instance_ids, "node running") if r.created_at > restarted_at]

    first = wait_for(claimed_since_restart, 60, "a node to be claimed after the broker restart")[0]
    progress_in = (first.created_at - restarted_at).total_seconds()
    helpers.record_recovery(f"{name} restart -> a node is claimed again", progress_in)
    return progress_in


def test_redis_restart_and_killed_mysql_connections_mid_run_lose_nothing(db, live_api, processes):
    """Two workers and a beat on a private Redis run 16 chains (fetch -> copy, 10 checkpointed
    steps -> store). Mid-run Redis is SIGKILLed (queued and unacknowledged messages are gone), stays
    down until both workers have lost their connection to it, and starts again empty; then every
    MySQL connection to the test database is KILLed, five times, each time as soon as the workers
    have committed another node. Every instance completes and every node was committed exactly once."""
    broker = helpers.OwnRedis(processes).start()
    workers = {name: processes.worker(name, wait=False, ORCH_BROKER_URL=broker.url) for name in ("w1", "w2")}
    for name, process in workers.items():
        processes.wait_registered(name, process)
    processes.beat(ORCH_BROKER_URL=broker.url)
    define(live_api, CHAIN)
    instance_ids = _create(db, INSTANCES)
    helpers.send_schedules(broker.url, MYSQL_URL, instance_ids)
    nodes = 3 * INSTANCES
    wait_for(lambda: _completed_nodes(db, instance_ids) >= nodes // 4, 60, "a quarter of the nodes done")

    broker.kill()
    before = _completed_nodes(db, instance_ids)
    running = sum(1 for r in helpers.node_rows(db, instance_ids).values() if r.status == "running")
    progress_in = _restart_when_every_worker_lost_it(
        db, broker, workers, instance_ids, TRIED_DEAD_BROKER, "redis"
    )

    killed = []
    mark = _completed_nodes(db, instance_ids)
    for round_ in range(KILL_ROUNDS):
        killed.append(helpers.kill_db_connections(db))
        # connections die again and again while nodes run: the next KILL waits for the next commit
        mark = wait_for(
            lambda last=mark: _next_commit(db, instance_ids, last, nodes),
            60,
            f"progress after KILL {round_ + 1}",
        )
    helpers.wait_all_completed(db, instance_ids, timeout=120)
    surfaced = sum(p.log_text().count("OperationalError") for p in workers.values())

    counts = helpers.assert_each_node_committed_once(db, instance_ids)
    for instance_id in instance_ids:
        done = {int(e.data) for e in helpers.effect_rows(db, [instance_id], "step")}
        assert done == set(range(TOTAL))
    print(
        f"\nredis killed after {before}/{nodes} nodes ({running} running); a node claimed again "
        f"{progress_in:.2f}s after its restart; MySQL connections killed: {killed} (database errors "
        f"surfacing in worker logs: {surfaced}); {counts}"
    )


def test_instances_whose_schedule_message_died_with_the_broker_still_run(db, live_api, processes):
    """Instances accepted while no worker runs: their `schedule` messages wait in Redis, which is
    killed and started again empty. MySQL still has the instances (pending); once a worker and a
    beat run, the sweep schedules them again and they complete: no accepted instance is lost."""
    broker = helpers.OwnRedis(processes).start()
    define(live_api, CHAIN)
    instance_ids = _create(db, 4)
    helpers.send_schedules(broker.url, MYSQL_URL, instance_ids)
    broker.kill()
    broker.start()

    processes.worker("w1", ORCH_BROKER_URL=broker.url)
    processes.beat(ORCH_BROKER_URL=broker.url)
    helpers.wait_all_completed(db, instance_ids, timeout=60)
    helpers.assert_each_node_committed_once(db, instance_ids)


# What a worker logs once it has tried the dead RabbitMQ node: its consumer, or a pool process that
# could not publish (connection refused).
TRIED_DEAD_RABBIT = re.compile(r"Connection to broker lost|Errno 111|Connection refused")
RABBIT_INSTANCES = 8


def test_a_rabbitmq_restart_mid_run_loses_no_instance(db, live_api, processes):
    """Two workers and a beat on a private RabbitMQ node run 8 chains. Mid-run the node is SIGKILLed
    and stays down until both workers have lost it, then starts again on its data: queues are
    durable and every message was confirmed on disk before its publish returned, and the sweep
    resends what a worker took with it. Every instance completes with each node committed once."""
    broker = helpers.OwnRabbit(processes)
    started = helpers.now()
    broker.start()
    helpers.record_recovery("private rabbitmq node: start", (helpers.now() - started).total_seconds())
    workers = {name: processes.worker(name, wait=False, ORCH_BROKER_URL=broker.url) for name in ("w1", "w2")}
    for name, process in workers.items():
        processes.wait_registered(name, process)
    processes.beat(ORCH_BROKER_URL=broker.url)
    define(live_api, CHAIN)
    instance_ids = _create(db, RABBIT_INSTANCES)
    helpers.send_schedules(broker.url, MYSQL_URL, instance_ids)
    nodes = 3 * RABBIT_INSTANCES
    wait_for(lambda: _completed_nodes(db, instance_ids) >= nodes // 4, 60, "a quarter of the nodes done")

    broker.kill()
    before = _completed_nodes(db, instance_ids)
    progress_in = _restart_when_every_worker_lost_it(
        db, broker, workers, instance_ids, TRIED_DEAD_RABBIT, "rabbitmq"
    )
    helpers.wait_all_completed(db, instance_ids, timeout=120)

    counts = helpers.assert_each_node_committed_once(db, instance_ids)
    for instance_id in instance_ids:
        done = {int(e.data) for e in helpers.effect_rows(db, [instance_id], "step")}
        assert done == set(range(TOTAL))
    print(
        f"\nrabbitmq killed after {before}/{nodes} nodes; a node claimed again {progress_in:.2f}s "
        f"after its restart; {counts}"
    )

"""start, pause, resume, cancel and retry over HTTP, on a real worker: 200 with the new status, 409 when
the state does not allow it, 404 for an unknown instance, 422 for a bad body."""

from __future__ import annotations

from tests.api.helpers import JSON, assert_error, chain, create, define
from tests.support.executors import open_gate

# every node waits at the gate `held` until the test opens it (never, for the cancel): the instance
# is still running when the test pauses or cancels it, however slow the machine. `tests.work` does
# not look at should_stop, so a pause never makes it fail; `tests.gated` stops on the cancel.
HELD = chain("held-chain", 3, executor="tests.work", gate="held")
CANCELLABLE = chain("cancellable-chain", 3, executor="tests.gated", gate="never")


def _action(live_api, instance_id: str, action: str, body=None):
    return live_api.post(f"/api/v1/instances/{instance_id}/{action}", body)


def test_start_pause_resume_and_409s(live_api, processes, redis_client):
    processes.worker("w1")
    define(live_api, HELD)
    instance_id = create(live_api, {"workflow": "held-chain", "start": False})["id"]
    assert_error(_action(live_api, instance_id, "pause"), 409, "INVALID_TRANSITION")
    assert_error(_action(live_api, instance_id, "resume"), 409, "INVALID_TRANSITION")

    started = _action(live_api, instance_id, "start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running" and started.json()["totalNodes"] == 3
    assert_error(_action(live_api, instance_id, "start"), 409, "INVALID_TRANSITION")

    paused = _action(live_api, instance_id, "pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
    assert_error(_action(live_api, instance_id, "pause"), 409, "INVALID_TRANSITION")
    resumed = _action(live_api, instance_id, "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "running", resumed.text

    open_gate(redis_client, "held")
    assert live_api.wait_status(instance_id)["status"] == "completed"
    assert_error(_action(live_api, instance_id, "cancel"), 409, "INVALID_TRANSITION")
    assert_error(_action(live_api, instance_id, "retry"), 409, "INVALID_TRANSITION")


def test_cancel_ends_a_running_instance(live_api, processes):
    processes.worker("w1")
    define(live_api, CANCELLABLE)
    instance_id = create(live_api, {"workflow": "cancellable-chain"})["id"]
    cancelled = _action(live_api, instance_id, "cancel", {"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["message"] == "changed my mind"
    assert_error(_action(live_api, instance_id, "cancel"), 409, "INVALID_TRANSITION")
    assert_error(_action(live_api, instance_id, "cancel", {"reason": 5}), 422)


def test_retry_reruns_a_failed_instance_and_checks_from_node(live_api, processes):
    processes.worker("w1")
    body = chain("fails-last", 2)
    body["nodes"][1]["executor"] = "tests.fatal"
    define(live_api, body)
    instance_id = create(live_api, {"workflow": "fails-last"})["id"]
    assert live_api.wait_status(instance_id)["status"] == "failed"

    assert_error(_action(live_api, instance_id, "retry", {"fromNode": "nope"}), 422, "VALIDATION_ERROR")
    assert_error(_action(live_api, instance_id, "retry", {"fromNode": 3}), 422, "VALIDATION_ERROR")
    assert_error(_action(live_api, instance_id, "retry", {"from": "n1"}), 422, "VALIDATION_ERROR")
    retried = _action(live_api, instance_id, "retry", {"fromNode": "n1"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] in ("running", "failed")
    final = live_api.wait_status(instance_id)
    assert final["status"] == "failed" and final["failedNodes"] == ["n2"]
    runs = [
        n
        for n in live_api.get(f"/api/v1/instances/{instance_id}/nodes").json()["nodes"]
        if n["nodeId"] == "n1"
    ]
    assert runs[0]["attempt"] == 2  # fromNode reran the completed n1 too


def test_unknown_instances_are_404_for_every_action(live_api):
    for action in ("start", "pause", "resume", "cancel", "retry"):
        assert_error(_action(live_api, "no-such-instance", action), 404, "NOT_FOUND")
    malformed = live_api.http.post(live_api.url + "/api/v1/instances/x/retry", data=b"{oops", headers=JSON)
    assert_error(malformed, 400, "BAD_REQUEST")


def test_a_repeated_external_id_restarts_an_instance_left_pending(live_api, processes):
    """The first request committed but never enqueued (start: false stands in for the crash)."""
    processes.worker("w1")
    define(live_api, chain("quick", 2))
    first = create(live_api, {"workflow": "quick", "externalId": "order-7", "start": False})
    assert first["status"] == "pending"
    again = create(live_api, {"workflow": "quick", "externalId": "order-7"}, status=200)
    assert again["id"] == first["id"]
    assert live_api.wait_status(first["id"])["status"] == "completed"


def test_workers_lists_the_live_worker(live_api, processes):
    processes.worker("w1")
    workers = live_api.get("/api/v1/workers").json()["workers"]
    assert [w["id"] for w in workers] == ["w1"]
    assert workers[0]["alive"] is True and workers[0]["status"] == "active"
    assert {"queues", "executors", "concurrency", "lastHeartbeat", "runningNodes"} <= set(workers[0])


def test_action_bodies_take_only_their_fields_and_must_be_objects(live_api):
    """As the OpenAPI document says: no body, or an object of the action's own fields (null = left out)."""
    for action, field in (
        ("start", None),
        ("pause", None),
        ("resume", None),
        ("cancel", "reason"),
        ("retry", "fromNode"),
    ):
        path = live_api.url + f"/api/v1/instances/x/{action}"
        for body in (b"null", b"[]", b'"x"', b'{"extra": 1}'):
            assert_error(live_api.http.post(path, data=body, headers=JSON), 422, "VALIDATION_ERROR")
        assert_error(live_api.http.post(path, data=b"{}", headers=JSON), 404, "NOT_FOUND")
        if field:
            assert_error(live_api.post(f"/api/v1/instances/x/{action}", {field: None}), 404, "NOT_FOUND")

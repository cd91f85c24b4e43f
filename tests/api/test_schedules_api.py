"""`/api/v1/schedules` over HTTP: create (201 with its next fire time), list, read, change, delete,
pause, resume, trigger; 422 naming the field for every bad value, 409 for a taken name, 404 for an
unknown one. Triggering creates the instance at once, tagged with the schedule and its fire time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from orchestrator.models import InstanceRow
from tests.api.helpers import GREETING, assert_error, define

SCHEDULE = {
    "name": "hourly-greeting",
    "workflow": "greeting",
    "cron": "0 * * * *",
    "timezone": "Europe/Paris",
    "input": {"email": "ann@example.com"},
    "overlap": "skip",
    "catchup": "last",
}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_list_read_change_pause_resume_delete(live_api):
    define(live_api, GREETING)
    created = live_api.post("/api/v1/schedules", SCHEDULE)
    assert created.status_code == 201, created.text
    body = created.json()
    next_fire = _time(body["nextFireAt"])
    now = datetime.now(UTC)
    assert now < next_fire <= now + timedelta(hours=1) and next_fire.minute == 0 and next_fire.second == 0
    assert (body["priority"], body["tags"], body["paused"], body["version"]) == ("normal", {}, False, None)
    assert_error(live_api.post("/api/v1/schedules", SCHEDULE), 409, "CONFLICT")

    listed = live_api.get("/api/v1/schedules").json()["schedules"]
    assert [(s["name"], s["nextFireAt"]) for s in listed] == [("hourly-greeting", body["nextFireAt"])]
    assert live_api.get("/api/v1/schedules/hourly-greeting").json() == body

    # 09:30 Paris time each day: in UTC 07:30 or 08:30 depending on the season
    changed = live_api.http.patch(
        f"{live_api.url}/api/v1/schedules/hourly-greeting",
        json={"cron": "30 9 * * *", "tags": {"team": "hr"}},
    )
    assert changed.status_code == 200, changed.text
    fires = _time(changed.json()["nextFireAt"])
    assert (fires.hour, fires.minute) in ((7, 30), (8, 30)) and changed.json()["tags"] == {"team": "hr"}

    paused = live_api.post("/api/v1/schedules/hourly-greeting/pause")
    assert (
        paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["nextFireAt"] is None
    )
    resumed = live_api.post("/api/v1/schedules/hourly-greeting/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert resumed.json()["nextFireAt"] == changed.json()["nextFireAt"]

    deleted = live_api.http.delete(f"{live_api.url}/api/v1/schedules/hourly-greeting")
    assert deleted.status_code == 200 and deleted.json()["name"] == "hourly-greeting"
    for method, path in (
        ("get", ""),
        ("delete", ""),
        ("patch", ""),
        ("post", "/pause"),
        ("post", "/resume"),
        ("post", "/trigger"),
    ):
        kwargs = {"json": {"priority": "high"}} if method == "patch" else {}
        answer = live_api.http.request(
            method, f"{live_api.url}/api/v1/schedules/hourly-greeting{path}", **kwargs
        )
        assert_error(answer, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"cron": "61 * * * *"}, "cron", "INVALID_CRON"),
        ({"cron": "* * *"}, "cron", "INVALID_CRON"),
        ({"cron": "0 0 30 2 *"}, "cron", "INVALID_CRON"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "INVALID_TIMEZONE"),
        ({"workflow": "no-such-workflow"}, "workflow", "WORKFLOW_NOT_FOUND"),
        ({"version": "9.9.9"}, "version", "WORKFLOW_NOT_FOUND"),
        ({"overlap": "queue"}, "overlap", "VALIDATION_ERROR"),
        ({"catchup": "some"}, "catchup", "VALIDATION_ERROR"),
        ({"priority": "urgent"}, "priority", "VALIDATION_ERROR"),
        ({"input": {}}, "input.email", "REQUIRED_PARAMETER"),
        ({"input": {"email": "a@b.c", "count": "three"}}, "input.count", "TYPE_MISMATCH"),
        ({"name": "has space"}, "name", "VALIDATION_ERROR"),
        ({"cron": None}, "cron", "REQUIRED_FIELD"),
        ({"tags": {"scheduleName": "x"}}, "tags.scheduleName", "VALIDATION_ERROR"),
        ({"paused": "yes"}, "paused", "TYPE_MISMATCH"),
        ({"every": "hour"}, "every", "VALIDATION_ERROR"),
    ],
)
def test_a_bad_schedule_is_a_422_naming_the_field(live_api, change, field, code):
    define(live_api, GREETING)
    body = {key: value for key, value in {**SCHEDULE, **change}.items() if value is not None}
    error = assert_error(live_api.post("/api/v1/schedules", body), 422)
    assert (field, code) in [(d["field"], d["code"]) for d in error["details"]], error


def test_a_bad_change_is_a_422_and_changes_nothing(live_api):
    define(live_api, GREETING)
    before = live_api.post("/api/v1/schedules", SCHEDULE).json()
    url = f"{live_api.url}/api/v1/schedules/hourly-greeting"
    for change, field in (
        ({"cron": "every hour"}, "cron"),
        ({"name": "other"}, "name"),
        ({"workflow": None}, "workflow"),
    ):
        error = assert_error(live_api.http.patch(url, json=change), 422)
        assert field in [d["field"] for d in error["details"]], error
    assert live_api.get("/api/v1/schedules/hourly-greeting").json() == before


def test_trigger_starts_an_instance_now_tagged_with_the_schedule(live_api, db):
    define(live_api, GREETING)
    live_api.post(
        "/api/v1/schedules", {**SCHEDULE, "paused": True, "tags": {"team": "hr"}, "priority": "high"}
    )
    triggered = live_api.post("/api/v1/schedules/hourly-greeting/trigger")
    assert triggered.status_code == 201, triggered.text
    instance = triggered.json()["instance"]
    assert instance["workflow"] == "greeting" and instance["priority"] == "high"
    tags = instance["tags"]
    assert (tags["scheduleName"], tags["team"]) == ("hourly-greeting", "hr")
    assert abs((_time(tags["scheduledFor"]) - datetime.now(UTC)).total_seconds()) < 60
    schedule = triggered.json()["schedule"]
    assert schedule["lastInstanceId"] == instance["id"] and schedule["nextFireAt"] is None  # still paused
    # overlap skip: the first run is still pending (no worker here), so a second trigger is refused
    assert_error(live_api.post("/api/v1/schedules/hourly-greeting/trigger"), 409, "CONFLICT")
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(InstanceRow)).scalar() == 1


def test_the_list_comes_in_pages_by_name(live_api):
    define(live_api, GREETING)
    for name in ("c", "a", "d", "b", "e"):
        assert live_api.post("/api/v1/schedules", {**SCHEDULE, "name": name}).status_code == 201
    first = live_api.get("/api/v1/schedules?limit=2").json()
    assert [s["name"] for s in first["schedules"]] == ["a", "b"] and first["nextAfter"] == "b"
    second = live_api.get("/api/v1/schedules?limit=2&after=b").json()
    assert [s["name"] for s in second["schedules"]] == ["c", "d"] and second["nextAfter"] == "d"
    last = live_api.get("/api/v1/schedules?limit=2&after=d").json()
    assert [s["name"] for s in last["schedules"]] == ["e"] and last["nextAfter"] is None
    for bad in ("0", "501", "x"):
        error = assert_error(live_api.get(f"/api/v1/schedules?limit={bad}"), 422)
        assert [d["field"] for d in error["details"]] == ["limit"], error

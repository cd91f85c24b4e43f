"""`PUT|DELETE /api/v1/limits/<executor>` and the paged `GET /api/v1/limits` over HTTP: what each
answers, the 422s naming the field, auth, and the same through `client.limits` and
`orchestrator limits list|set|clear`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert

from orchestrator import limit_overrides
from orchestrator.client import Client, NotFound, ValidationFailed
from orchestrator.executors import executor
from orchestrator.models import LimitOverrideRow
from orchestrator.settings import Settings
from tests.api.helpers import assert_error
from tests.api.test_cli import orchestrator
from tests.support.fixtures import LiveApi

EXECUTOR = "tests.api.overridden"


@executor(EXECUTOR, concurrency=3, rate="5/s")
def _overridden(ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
    return {}


def _put(api: LiveApi, name: str, body: Any, **kwargs: Any) -> Any:
    return api.http.put(f"{api.url}/api/v1/limits/{name}", json=body, timeout=30, **kwargs)


def _delete(api: LiveApi, name: str, **kwargs: Any) -> Any:
    return api.http.delete(f"{api.url}/api/v1/limits/{name}", timeout=30, **kwargs)


def _ours(api: LiveApi) -> dict[str, dict[str, Any]]:
    return {
        e["kind"]: e
        for e in api.get("/api/v1/limits").json()["limits"]
        if e["name"] == f"executor:{EXECUTOR}"
    }


def test_put_overrides_the_fields_it_gives_and_delete_drops_them(live_api):
    answer = _put(live_api, EXECUTOR, {"concurrency": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": f"executor:{EXECUTOR}",
        "executor": EXECUTOR,
        "concurrency": 1,
        "rate": "5/s",
        "sources": {"concurrency": "api", "rate": "code"},
        "override": {"concurrency": 1},
    }
    entries = _ours(live_api)
    assert (entries["concurrency"]["limit"], entries["concurrency"]["source"]) == (1, "api")
    assert (entries["rate"]["limit"], entries["rate"]["source"]) == ("5/s", "code")
    # the limit's own name works too; an integral float is an integer; null removes that kind
    answer = _put(live_api, f"executor:{EXECUTOR}", {"concurrency": 4.0, "rate": None})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["concurrency"], answer.json()["rate"]) == (4, None)
    assert answer.json()["override"] == {"concurrency": 4, "rate": None}
    assert set(_ours(live_api)) == {"concurrency"}
    answer = _delete(live_api, EXECUTOR)
    assert answer.status_code == 200, answer.text
    assert answer.json()["override"] is None
    assert answer.json()["sources"] == {"concurrency": "code", "rate": "code"}
    assert_error(_delete(live_api, EXECUTOR), 404)
    # an executor this process has no limit for (nor even knows)
    answer = _put(live_api, "some.other-executor", {"rate": "100/m"})
    assert answer.status_code == 200 and answer.json()["sources"]["rate"] == "api"
    listed = {e["name"]: e for e in live_api.get("/api/v1/limits").json()["limits"]}
    assert listed["executor:some.other-executor"]["limit"] == "100/m"


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        (EXECUTOR, {"concurrency": 0}, "concurrency"),
        (EXECUTOR, {"concurrency": 1_000_001}, "concurrency"),
        (EXECUTOR, {"concurrency": "2"}, "concurrency"),
        (EXECUTOR, {"concurrency": 2.5}, "concurrency"),
        (EXECUTOR, {"concurrency": True}, "concurrency"),
        (EXECUTOR, {"rate": "fast"}, "rate"),
        (EXECUTOR, {"rate": "0/s"}, "rate"),
        (EXECUTOR, {"rate": "1/2d"}, "rate"),
        (EXECUTOR, {"rate": "10 / s"}, "rate"),
        (EXECUTOR, {"rate": 10}, "rate"),
        (EXECUTOR, {"concurrency": 1, "burst": 2}, "burst"),
        (EXECUTOR, {}, "body"),
        (EXECUTOR, [1], "body"),
        ("x" * 247, {"concurrency": 1}, "name"),
        ("executor:" + "x" * 247, {"concurrency": 1}, "name"),
        ("crm%20push", {"concurrency": 1}, "name"),
    ],
)
def test_a_bad_put_is_422_naming_the_field(live_api, name, body, field):
    error = assert_error(_put(live_api, name, body), 422)
    assert field in [d["field"] for d in error["details"]], error


def test_a_name_over_the_bound_on_delete_is_422_and_the_bound_itself_is_taken(live_api):
    assert_error(_delete(live_api, "x" * 247), 422)
    assert _put(live_api, "x" * 246, {"concurrency": 2}).status_code == 200
    assert _delete(live_api, "executor:" + "x" * 246).status_code == 200


def test_an_integer_of_too_many_digits_is_400_saying_so_without_the_servers_settings(live_api):
    for body in (b'{"concurrency": 1' + b"0" * 5000 + b"}", b'{"concurrency": -' + b"9" * 5000 + b"}"):
        url = f"{live_api.url}/api/v1/limits/{EXECUTOR}"
        response = live_api.http.put(url, data=body, headers={"Content-Type": "application/json"})
        error = assert_error(response, 400, "BAD_REQUEST")
        assert [d["field"] for d in error["details"]] == ["body"], error
        message = error["details"][0]["message"]
        assert "digits is out of range" in message and "sys." not in message, message
    huge = 10**300  # within Python's bound: an ordinary 422 on the field
    error = assert_error(_put(live_api, EXECUTOR, {"concurrency": huge}), 422)
    assert [d["field"] for d in error["details"]] == ["concurrency"], error
    assert error["details"][0]["message"].endswith("got a number of 301 digits"), error  # not echoed


def test_the_number_of_executors_with_limits_set_through_the_api_is_bounded(live_api, db):
    """Every process reads all overrides every 2 s and every page of the listing sorts them, so a
    client cannot add them without end: past `MAX_OVERRIDES` a PUT for another executor is 409; a
    PUT for one that has its override, or after a DELETE, still works."""
    rows = [
        {"executor": f"filler.{i:04d}", "concurrency_set": True, "concurrency": 1}
        for i in range(limit_overrides.MAX_OVERRIDES - 1)
    ]
    with db.begin() as conn:
        conn.execute(insert(LimitOverrideRow), rows)
    assert _put(live_api, "last.one", {"concurrency": 2}).status_code == 200
    error = assert_error(_put(live_api, "one.more", {"concurrency": 2}), 409, "CONFLICT")
    assert [d["field"] for d in error["details"]] == ["name"]
    assert _put(live_api, "filler.0000", {"rate": "1/s"}).status_code == 200
    assert _delete(live_api, "filler.0001").status_code == 200
    assert _put(live_api, "one.more", {"concurrency": 2}).status_code == 200


def test_writes_need_a_bearer_token_and_reads_take_it_too(db):
    api = LiveApi(Settings.from_env().with_overrides(api_tokens=("t1",)))
    try:
        assert_error(_put(api, EXECUTOR, {"concurrency": 1}), 401)
        assert_error(_delete(api, EXECUTOR), 401)
        assert_error(api.get("/api/v1/limits"), 401)
        token = {"Authorization": "Bearer t1"}
        assert _put(api, EXECUTOR, {"concurrency": 1}, headers=token).status_code == 200
        assert api.get("/api/v1/limits", headers=token).status_code == 200
        assert _delete(api, EXECUTOR, headers=token).status_code == 200
    finally:
        api.close()


def test_the_listing_comes_in_pages(live_api):
    for i in range(5):
        assert _put(live_api, f"paged.e{i}", {"concurrency": i + 1, "rate": "1/s"}).status_code == 200
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        answer = live_api.get("/api/v1/limits", params=params).json()
        assert len(answer["limits"]) <= 3
        seen += [(e["name"], e["kind"]) for e in answer["limits"]]
        pages += 1
        cursor = answer["nextCursor"]
        if cursor is None:
            break
    everything = [
        (e["name"], e["kind"]) for e in live_api.get("/api/v1/limits", params={"limit": 500}).json()["limits"]
    ]
    assert seen == everything and pages >= 4
    assert {(f"executor:paged.e{i}", kind) for i in range(5) for kind in ("concurrency", "rate")} <= set(seen)
    for cursor in ("nothing", "speed:executor:x", "rate:" + "x" * 256):
        error = assert_error(live_api.get("/api/v1/limits", params={"cursor": cursor}), 422)
        assert [d["field"] for d in error["details"]] == ["cursor"]


def test_the_client_and_the_command_line(live_api):
    with Client(live_api.url) as client:
        found = client.limits.set(EXECUTOR, concurrency=2)
        assert (found.concurrency, found.rate, found.sources) == (
            2,
            "5/s",
            {"concurrency": "api", "rate": "code"},
        )
        found = client.limits.set(EXECUTOR, rate=None)
        assert (found.concurrency, found.rate, found.override) == (3, None, {"rate": None})
        ours = [limit for limit in client.limits.list() if limit.name == f"executor:{EXECUTOR}"]
        assert [(limit.kind, limit.limit, limit.source) for limit in ours] == [("concurrency", 3, "code")]
        with pytest.raises(ValidationFailed):
            client.limits.set(EXECUTOR, concurrency=0)
        assert client.limits.clear(EXECUTOR).override is None
        with pytest.raises(NotFound):
            client.limits.clear(EXECUTOR)
    done = orchestrator(live_api, "limits", "set", EXECUTOR, "--concurrency", "7", "--rate", "none")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\t") == [f"executor:{EXECUTOR}", "concurrency 7 (api)", "rate none (api)\n"]
    listed = orchestrator(live_api, "limits", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"executor:{EXECUTOR}\tconcurrency\t7\t0\t0\tapi" in listed.stdout.splitlines()
    refused = orchestrator(live_api, "limits", "set", EXECUTOR, "--concurrency", "0")
    assert refused.returncode == 2 and "concurrency" in refused.stderr
    assert orchestrator(live_api, "limits", "set", EXECUTOR).returncode == 2  # neither field given
    cleared = orchestrator(live_api, "limits", "clear", EXECUTOR)
    assert cleared.returncode == 0 and "concurrency 3 (code)" in cleared.stdout
    assert orchestrator(live_api, "limits", "clear", EXECUTOR).returncode == 2

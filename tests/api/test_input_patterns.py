"""Input `pattern`s over HTTP: matched in linear time, refused at definition time when RE2 cannot match
them, and a definition stored before that rule still serves its instances."""

from __future__ import annotations

import time

from sqlalchemy import insert

from orchestrator.models import DefinitionRow
from tests.api.helpers import assert_error, create, define

EVIL = "^(a+)+$"  # Python's backtracking `re` needs 2^n steps on a near miss
NEAR_MISS = "a" * 28 + "!"  # about 20 s of one API thread each, with the GIL held, before RE2


def patterned(name: str, **spec: object) -> dict[str, object]:
    return {
        "name": name,
        "version": "1.0.0",
        "inputs": {"code": {"type": "string", **spec}},
        "nodes": [{"id": "a", "executor": "noop"}],
    }


def test_a_batch_of_near_misses_on_a_catastrophic_pattern_answers_at_once(live_api):
    define(live_api, patterned("evil", pattern=EVIL))
    items = [{"workflow": "evil", "input": {"code": NEAR_MISS}, "start": False}] * 20
    started = time.monotonic()
    response = live_api.post("/api/v1/instances/batch", {"instances": items})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [422] * 20
    assert {r["error"]["details"][0]["field"] for r in results} == {"input.code"}
    assert elapsed < 10, elapsed  # generous: milliseconds with RE2, 20 x 20 s before
    create(live_api, {"workflow": "evil", "input": {"code": "aaaa"}, "start": False})


def test_a_catastrophic_pattern_checks_its_default_at_once(live_api):
    started = time.monotonic()
    error = assert_error(
        live_api.post("/api/v1/definitions", patterned("evil", pattern=EVIL, default=NEAR_MISS)), 422
    )
    assert time.monotonic() - started < 10
    assert [d["field"] for d in error["details"]] == ["inputs.code.default"]


def test_a_pattern_re2_cannot_match_is_422_naming_the_field(live_api):
    for pattern in (r"^(\w)\1$", "^(?!admin)", "(?<=@)example"):
        error = assert_error(live_api.post("/api/v1/definitions", patterned("p", pattern=pattern)), 422)
        assert [(d["field"], d["code"]) for d in error["details"]] == [
            ("inputs.code.pattern", "VALIDATION_ERROR")
        ]
        assert "lookaround" in error["details"][0]["message"]


def test_a_definition_stored_with_such_a_pattern_still_serves_instances(live_api, db):
    # As a version before this rule stored it: the row was valid then, and must stay readable.
    body = patterned("legacy", pattern="^(?!admin)", default="guest")
    with db.begin() as conn:
        conn.execute(
            insert(DefinitionRow).values(name="legacy", version="1.0.0", body=body, content_hash="0" * 64)
        )
    assert live_api.get("/api/v1/definitions/legacy/1.0.0").status_code == 200
    created = create(live_api, {"workflow": "legacy", "start": False})
    assert live_api.get(f"/api/v1/instances/{created['id']}").json()["input"] == {"code": "guest"}
    error = assert_error(
        live_api.post("/api/v1/instances", {"workflow": "legacy", "input": {"code": "x"}}), 422
    )
    assert [(d["field"], d["code"]) for d in error["details"]] == [("input.code", "VALIDATION_ERROR")]
    assert "cannot be checked" in error["details"][0]["message"]

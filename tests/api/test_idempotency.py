"""One externalId, twenty concurrent requests over real HTTP: exactly one instance."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import func, select

from orchestrator.models import InstanceRow
from tests.api.helpers import GREETING, define

CONCURRENT = 20


def test_concurrent_creates_with_one_external_id_make_one_instance(live_api, db):
    define(live_api, GREETING)
    barrier = threading.Barrier(CONCURRENT)
    body = {"workflow": "greeting", "input": {"email": "a@x"}, "externalId": "pay-42"}

    def post(_: int) -> requests.Response:
        with requests.Session() as session:  # a connection of its own per request
            barrier.wait(timeout=30)
            return session.post(f"{live_api.url}/api/v1/instances", json=body, timeout=60)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(post, range(CONCURRENT)))

    assert sorted(r.status_code for r in responses) == [200] * (CONCURRENT - 1) + [201], [
        (r.status_code, r.text[:200]) for r in responses
    ]
    assert len({r.json()["id"] for r in responses}) == 1
    with db.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(InstanceRow).where(InstanceRow.external_id == "pay-42")
        ).scalar()
    assert count == 1

"""`create_app(settings)`: the settings passed in reach the broker the API sends to, not only the
database; the environment is not read behind their back."""

from __future__ import annotations

import json

import redis

from api import create_app
from orchestrator.settings import Settings
from tests.api.helpers import chain
from tests.support.fixtures import REDIS_URL


def _other_redis_db() -> str:
    base, _, db = REDIS_URL.rpartition("/")
    return f"{base}/{(int(db or 0) + 7) % 16}"


def test_the_schedule_message_goes_to_the_broker_the_settings_name(db) -> None:
    from workers.app import use_broker

    other = _other_redis_db()
    elsewhere = redis.Redis.from_url(other)
    elsewhere.flushdb()
    app = create_app(Settings.from_env().with_overrides(broker_url=other))
    try:
        client = app.test_client()
        assert client.post("/api/v1/definitions", json=chain("sent-elsewhere", 1)).status_code in (200, 201)
        created = client.post("/api/v1/instances", json={"workflow": "sent-elsewhere"})
        assert created.status_code == 201
        instance_id = created.get_json()["id"]
        # kombu keeps one list per priority level: `orchestrator`, `orchestrator\x06\x163`, ...
        lists = elsewhere.keys("orchestrator*")
        messages = [json.loads(m) for key in lists for m in elsewhere.lrange(key, 0, -1)]
        assert [m["headers"]["task"] for m in messages] == ["orchestrator.schedule"]
        assert instance_id in messages[0]["headers"]["argsrepr"]
        assert not redis.Redis.from_url(REDIS_URL).keys("orchestrator*")
    finally:
        use_broker(REDIS_URL)
        app.extensions["orchestrator.engine"].dispose()
        elsewhere.flushdb()

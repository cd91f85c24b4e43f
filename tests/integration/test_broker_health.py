"""`/health` asks the broker the cluster runs on: Redis or RabbitMQ answering is `ok`, a RabbitMQ that
does not answer is a 503 naming the broker."""

from __future__ import annotations

import pytest

from tests.support.services import free_port
from workers.app import use_broker


@pytest.mark.both_brokers
def test_health_checks_the_broker_in_use(db, live_api, broker_url):
    response = live_api.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.parametrize("broker_url", ["amqp"], indirect=True)
def test_a_rabbitmq_that_does_not_answer_is_a_503_naming_the_broker(db, live_api, broker_url):
    use_broker(f"amqp://guest:guest@127.0.0.1:{free_port()}//")  # reset to Redis by the fixture

    response = live_api.get("/health")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error: ")

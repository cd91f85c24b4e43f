"""The egress policy where connections open: local listeners on loopback addresses only (denied by
the production defaults; 127.0.0.2 is the one a test allows), and the listener that must not be
reached shows that it got nothing."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from orchestrator import builtin_executors, callbacks, egress, outbound, storable
from orchestrator.context import ExecutionContext
from orchestrator.errors import EgressDenied, Fatal
from tests.support.listeners import Listener
from tests.support.services import free_port

DEFAULTS = egress.policy()
ALLOW_2 = egress.policy(allow=("127.0.0.2/32",))


def test_a_loopback_listener_is_denied_by_the_production_defaults_and_gets_nothing():
    with Listener("127.0.0.1") as target:
        with pytest.raises(EgressDenied, match=r"127\.0\.0\.1 is in 127\.0\.0\.0/8 \(loopback"):
            outbound.session(DEFAULTS).get(target.url + "/x", timeout=5)
        assert target.requests == []


def test_a_host_name_is_judged_by_the_address_it_resolves_to():
    with Listener("127.0.0.1") as target:
        with pytest.raises(EgressDenied, match=r"localhost resolves to 127\.0\.0\.1"):
            outbound.session(DEFAULTS).get(f"http://localhost:{target.port}/x", timeout=5)
        assert target.requests == []


def test_an_allowed_address_is_called():
    with Listener("127.0.0.2") as target:
        response = outbound.session(ALLOW_2).get(target.url + "/x", timeout=5)
        assert response.json() == {"hello": "from 127.0.0.2"}
        assert target.requests == [("GET", "/x")]


def test_a_redirect_from_an_allowed_listener_to_a_denied_one_is_judged_at_its_hop():
    with Listener("127.0.0.1") as denied, Listener("127.0.0.2", redirect_to=denied.url + "/in") as allowed:
        with pytest.raises(EgressDenied, match=r"127\.0\.0\.1"):
            outbound.session(ALLOW_2).get(allowed.url + "/start", timeout=5)
        assert allowed.requests == [("GET", "/start")]
        assert denied.requests == []


def test_a_redirect_between_allowed_listeners_is_followed():
    with Listener("127.0.0.2") as second, Listener("127.0.0.2", redirect_to=second.url + "/b") as first:
        assert outbound.session(ALLOW_2).get(first.url + "/a", timeout=5).status_code == 200
        assert (first.requests, second.requests) == ([("GET", "/a")], [("GET", "/b")])


def _answers(*addresses: str) -> Any:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in addresses]


def test_the_connection_goes_to_the_address_that_was_judged_never_to_a_second_answer():
    """DNS rebinding: a name that answers an allowed address first and a denied one afterwards."""
    lookups: list[str] = []

    def rebinding(host: str, port: int) -> Any:
        lookups.append(host)
        return _answers("127.0.0.2" if len(lookups) == 1 else "127.0.0.1")

    with Listener("127.0.0.2") as allowed, Listener("127.0.0.1", port=allowed.port) as denied:
        http = outbound.session(ALLOW_2, resolve=rebinding)
        response = http.get(f"http://rebinding.test:{allowed.port}/x", timeout=5)
        assert response.json() == {"hello": "from 127.0.0.2"}
        assert lookups == ["rebinding.test"]  # one answer, judged and used
        assert denied.requests == []


def test_a_name_with_one_denied_address_among_allowed_ones_is_denied_whole():
    with Listener("127.0.0.2") as allowed:
        mixed = outbound.session(ALLOW_2, resolve=lambda host, port: _answers("127.0.0.2", "127.0.0.1"))
        with pytest.raises(EgressDenied, match=r"mixed\.test resolves to 127\.0\.0\.1"):
            mixed.get(f"http://mixed.test:{allowed.port}/x", timeout=5)
        assert allowed.requests == []


class _Running:
    """The runtime of a node nobody asked to stop: the executor only reads `should_stop`."""

    def log(self, level: str, message: str, details: Any) -> None: ...

    def checkpoint(self, data: Any) -> None: ...

    def heartbeat(self) -> None: ...

    def should_stop(self) -> bool:
        return False


def _running_ctx() -> ExecutionContext:
    return ExecutionContext("i", "n", 1, {}, None, _Running())


def test_the_http_executor_fails_a_denied_url_for_good_with_egress_denied():
    with Listener("127.0.0.1") as target:
        with pytest.raises(Fatal) as failed:
            builtin_executors.http(_running_ctx(), {"url": target.url + "/x?apikey=SECRET"})
        assert target.requests == []
    assert failed.value.retryable is False and failed.value.details == {"code": "EGRESS_DENIED"}
    assert "apikey=***" in failed.value.message and "SECRET" not in failed.value.message


def test_the_http_executor_reads_an_answer_only_up_to_what_an_output_can_hold(monkeypatch):
    monkeypatch.setenv("ORCH_EGRESS_ALLOW", "127.0.0.1/32")
    with Listener("127.0.0.1", body_bytes=storable.MAX_BYTES + 1) as target, pytest.raises(Fatal) as failed:
        builtin_executors.http(_running_ctx(), {"url": target.url + "/big"})
    assert failed.value.details == {"code": "OUTPUT_NOT_STORABLE"} and failed.value.retryable is False
    with Listener("127.0.0.1", body_bytes=1000) as target:
        output = builtin_executors.http(_running_ctx(), {"url": target.url + "/small"})
    assert output["status"] == 200 and output["body"] == "a" * 1000


def test_a_callback_is_denied_by_the_policy_and_the_listener_gets_nothing():
    with Listener("127.0.0.1") as target:
        with pytest.raises(EgressDenied):
            callbacks.post(target.url + "/hook", {"x": 1}, DEFAULTS)
        assert target.requests == []
        callbacks.post(target.url + "/hook", {"x": 1}, egress.policy(allow=("127.0.0.1/32",)))
        assert target.requests == [("POST", "/hook")]


def test_a_callback_does_not_follow_a_redirect():
    with Listener("127.0.0.2") as second, Listener("127.0.0.2", redirect_to=second.url + "/b") as first:
        with pytest.raises(callbacks.DeliveryFailed, match="answered 302"):
            callbacks.post(first.url + "/a", {"x": 1}, ALLOW_2)
        assert second.requests == []


def test_a_failed_callback_says_why_without_the_secrets_of_its_url():
    url = f"http://user:hunter2@127.0.0.2:{free_port()}/hook?apikey=SECRET"  # nothing listens there
    with pytest.raises(callbacks.DeliveryFailed) as failed:
        callbacks.post(url, {"x": 1}, ALLOW_2)
    message = str(failed.value)
    assert "ConnectionError" in message and "user:***@127.0.0.2" in message and "apikey=***" in message
    assert "SECRET" not in message and "hunter2" not in message


def test_no_proxy_is_used_the_policy_could_not_judge_the_target_through_it():
    assert outbound.session(DEFAULTS).trust_env is False  # none from the environment
    with pytest.raises(EgressDenied, match="proxy"):
        outbound.session(DEFAULTS).get("http://example.test/", proxies={"http": "http://127.0.0.2:1"})

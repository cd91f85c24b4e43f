"""The retry policy: a node's `retries` (else the instance's `maxRetries`) and its backoff."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.definitions import NodeSpec
from orchestrator.retry import MAX_RETRY_DELAY, RetryPolicy


def test_the_node_s_retries_win_over_the_instance_s_and_none_means_no_retry() -> None:
    assert RetryPolicy.of(NodeSpec("a", "a", retries=2), max_retries=5).retries == 2
    assert RetryPolicy.of(NodeSpec("a", "a", retries=0), max_retries=5).retries == 0
    assert RetryPolicy.of(NodeSpec("a", "a"), max_retries=5).retries == 5
    assert RetryPolicy.of(NodeSpec("a", "a"), max_retries=None).retries == 0


def test_the_wait_doubles_from_the_retry_delay_until_retries_are_spent() -> None:
    policy = RetryPolicy.of(NodeSpec("a", "a", retries=3, retry_delay_ms=500), max_retries=None)
    waits = [policy.next_delay(failures) for failures in (1, 2, 3, 4)]
    assert waits == [timedelta(seconds=0.5), timedelta(seconds=1), timedelta(seconds=2), None]


def test_the_wait_is_capped_even_for_a_count_that_would_overflow() -> None:
    policy = RetryPolicy(retries=5000, delay_ms=1000)
    assert policy.next_delay(13) == MAX_RETRY_DELAY
    assert policy.next_delay(5000) == MAX_RETRY_DELAY

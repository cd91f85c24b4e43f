"""The retry policy of a node: how many failed attempts are retried, and how long each retry waits.

Read in one place, from the node's `retries` (else its instance's `maxRetries`, else none) and its
`retryDelay`; `completion.fail` only asks it. The wait grows exponentially from `retryDelay`, capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from orchestrator.definitions import NodeSpec

MAX_RETRY_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int  # failed attempts that are retried; the one after them fails the node
    delay_ms: int  # the wait before the first retry
    backoff: float = 2.0  # each further retry waits this many times longer...
    max_delay: timedelta = MAX_RETRY_DELAY  # ...up to this

    @classmethod
    def of(cls, spec: NodeSpec, max_retries: int | None) -> RetryPolicy:
        """The policy of node `spec` in an instance created with `maxRetries` = `max_retries`."""
        retries = spec.retries if spec.retries is not None else (max_retries or 0)
        return cls(retries=retries, delay_ms=spec.retry_delay_ms)

    def next_delay(self, attempt_failures: int) -> timedelta | None:
        """The wait before the next attempt once `attempt_failures` attempts failed (counting the one
        that just did); None when no retry is left."""
        if attempt_failures > self.retries:
            return None
        cap = self.max_delay.total_seconds()
        seconds = self.delay_ms / 1000
        for _ in range(attempt_failures - 1):  # stepwise, so a large count cannot overflow a float
            seconds *= self.backoff
            if seconds >= cap:
                break
        return timedelta(seconds=min(cap, seconds))

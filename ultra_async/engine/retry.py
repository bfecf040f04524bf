"""The one retry loop: capped exponential backoff with full jitter, honouring Retry-After.

This is the only place that sleeps for backoff. Time and randomness are injectable so tests
run without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from ..config import RetryPolicy
from ..errors import InfraError, RequestError, RequestRejectedError

T = TypeVar("T")
log = structlog.get_logger("ultra_async.engine.retry")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
#: called before each retry with (error, attempt that failed, delay in seconds)
OnRetry = Callable[[RequestError, int, float], None]


def backoff_delay_s(attempt: int, policy: RetryPolicy, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(max_delay, base · 2^(attempt-1))]."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2 ** (attempt - 1))
    return float(rand() * ceiling)


def rejection_reason(error: RequestError) -> str:
    """`400 content_filter: <the provider's message>`: status, code, then what it said."""
    status = str(error.status) if error.status is not None else "HTTP"
    code = f" {error.code}" if error.code else ""
    return f"{status}{code}: {error.detail or error}"


@dataclass(slots=True)
class Retrier:
    """Runs a request function until it succeeds, the budget is spent, or the deadline passes."""

    policy: RetryPolicy
    sleep: Sleep = asyncio.sleep
    clock: Clock = time.monotonic
    rand: Callable[[], float] = random.random

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        deadline: float | None = None,
        on_retry: OnRetry | None = None,
        first_error: RequestError | None = None,
    ) -> T:
        """Await `fn()`; retry on retryable RequestErrors; raise InfraError when giving up.

        `deadline` is a value of `clock` after which no retry is started. `first_error` is the
        failure of an attempt the caller already made (its happy path needs no retry loop).
        """
        failures = 0
        error = first_error
        while True:
            if error is not None:
                failures += 1
                delay = self._delay_or_give_up(error, failures, deadline)
                if on_retry is not None:
                    on_retry(error, failures, delay)
                await self.sleep(delay)
            try:
                return await fn()
            except RequestError as failed:
                error = failed

    def _delay_or_give_up(
        self, error: RequestError, failures: int, deadline: float | None
    ) -> float:
        """Seconds to wait before the next attempt, or InfraError when there is none.

        A rejected request (content filter, context length, invalid body) is never retried:
        it raises RequestRejectedError, which ends the test as a `request_error`.
        """
        if error.kind == "rejected":
            raise RequestRejectedError(
                rejection_reason(error), status=error.status, code=error.code
            ) from None
        if not error.retryable:
            raise InfraError(
                f"{error} (not retried)",
                fatal=error.route_fatal,
                status=error.status,
                kind=error.kind,
            ) from None
        if failures >= self.policy.max_attempts:
            raise InfraError(
                f"{error.kind} error, gave up after {failures} attempts: {error}",
                status=error.status,
                kind=error.kind,
            ) from None
        delay = backoff_delay_s(failures, self.policy, self.rand)
        if error.retry_after_s is not None:
            # the server said when; waiting less only earns another 429
            delay = max(delay, error.retry_after_s)
        if deadline is not None and self.clock() + delay > deadline:
            raise InfraError(
                f"test deadline reached while retrying ({failures} attempts): {error}",
                status=error.status,
                kind=error.kind,
            ) from None
        return delay

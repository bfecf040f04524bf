"""Per-shard and per-key limits: adjustable semaphores, token buckets and AIMD control.

A shard admits `workers` concurrent tests (AdjustableSemaphore). Every HTTP request takes a
token from the shard's bucket and from the bucket of its key, when the key declares one
(AdjustableLimiter, an aiolimiter bucket whose rate can change while tasks wait on it).
AIMD raises a shard's rate and concurrency slowly on sustained success and halves them on 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter

from ..types import Range

Clock = Callable[[], float]


class AdjustableLimiter(AsyncLimiter):
    """A token bucket of `burst` tokens refilled at `qps`; `set_rate` keeps every waiter."""

    def __init__(self, qps: float, burst: int = 1) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        super().__init__(burst, burst / qps)
        self.qps = qps
        self.burst = burst

    def try_acquire(self) -> bool:
        """Take a token now if one is free and nobody is queued; never waits."""
        if self._waiters or not self.has_capacity():
            return False
        self._level += 1
        return True

    def set_rate(self, qps: float) -> None:
        """Change the refill rate; tokens already drained stay drained, waiters keep their place."""
        if qps <= 0:
            raise ValueError("qps must be > 0")
        if qps == self.qps:
            return
        # settle the level at the old rate before switching, so no capacity is invented
        with contextlib.suppress(RuntimeError):  # no running loop yet: nothing to settle
            self._leak()
        self.qps = qps
        self.time_period = self.burst / qps
        self._rate_per_sec = qps
        if self._waiters:
            self._wake_next()


class AdjustableSemaphore:
    """A semaphore whose limit can change while held; lowering it waits for holders to leave."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        return self._in_use

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._wake()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued; never waits."""
        if self._in_use < self._limit and not self._waiters:
            self._take()
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # woken and cancelled in the same step: hand the slot on
                self._in_use -= 1
                self._wake()
            else:
                self._waiters.remove(fut)
            raise

    def release(self) -> None:
        if self._in_use <= 0:
            raise RuntimeError("release() without acquire()")
        self._in_use -= 1
        self._wake()

    def _take(self) -> None:
        self._in_use += 1
        self.peak = max(self.peak, self._in_use)

    def _wake(self) -> None:
        while self._waiters and self._in_use < self._limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self._take()
                fut.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@dataclass(slots=True)
class AimdController:
    """Additive increase on sustained success, multiplicative decrease on 429, within bounds.

    A 429 for a request sent before the last decrease is not a new signal: it was sent at the
    old rate. So a burst of 429s from requests already in flight halves the rate once, and a
    rate far above the server's limit still comes down within a few round trips.
    """

    workers: Range
    qps: Range
    clock: Clock = time.monotonic
    decrease_factor: float = 0.5
    #: successes in a row before one additive step
    increase_after: int = 20
    cooldown_s: float = 5.0
    current_workers: float = field(init=False)
    current_qps: float = field(init=False)
    _streak: int = field(init=False, default=0)
    _calm_after: float = field(init=False, default=0.0)
    _last_decrease: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self.current_workers = self.workers.start
        self.current_qps = self.qps.start

    @property
    def adaptive(self) -> bool:
        return self.workers.adaptive or self.qps.adaptive

    def on_success(self) -> bool:
        """Record a success; True when the limits went up."""
        self._streak += 1
        if self._streak < self.increase_after or self.clock() < self._calm_after:
            return False
        self._streak = 0
        new_qps = min(self.qps.max, self.current_qps + max(1.0, self.qps.max / 20))
        new_workers = min(self.workers.max, self.current_workers + max(1.0, self.workers.max / 20))
        changed = (new_qps, new_workers) != (self.current_qps, self.current_workers)
        self.current_qps, self.current_workers = new_qps, new_workers
        return changed

    def on_rate_limited(self, retry_after_s: float | None, sent_at: float | None = None) -> bool:
        """Record a 429 for a request sent at `sent_at`; True when the limits went down."""
        self._streak = 0
        now = self.clock()
        if (now if sent_at is None else sent_at) <= self._last_decrease:
            return False
        self._last_decrease = now
        # no increase until the server has had time to recover
        self._calm_after = now + max(self.cooldown_s, retry_after_s or 0.0)
        new_qps = max(self.qps.min, self.current_qps * self.decrease_factor)
        new_workers = max(self.workers.min, math.floor(self.current_workers * self.decrease_factor))
        changed = (new_qps, new_workers) != (self.current_qps, self.current_workers)
        self.current_qps, self.current_workers = new_qps, new_workers
        return changed


class KeyLimits:
    """Limits declared on an API key, shared by every shard (of any model) that uses it."""

    def __init__(self, qps: float | None, burst: int, max_in_flight: int | None) -> None:
        self.limiter = AdjustableLimiter(qps, burst) if qps else None
        self.in_flight = AdjustableSemaphore(max_in_flight) if max_in_flight else None


class ShardLimits:
    """Everything that paces one shard: test slots, request tokens, Retry-After pauses, AIMD."""

    def __init__(
        self,
        workers: Range,
        qps: Range,
        burst: int,
        key: KeyLimits | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.control = AimdController(workers, qps, clock=clock)
        self.tests = AdjustableSemaphore(int(workers.start))
        self.bucket = AdjustableLimiter(qps.start, burst)
        self.key = key
        self._clock = clock
        self._paused_until = 0.0

    @property
    def qps(self) -> float:
        return self.bucket.qps

    def pause(self, seconds: float) -> None:
        """Hold every new request of this shard for `seconds` (a server's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def try_take_token(self) -> bool:
        """Take the tokens a request needs without waiting, if they are all free now.

        The common case when a shard is below its rate: no coroutine, no timer.
        """
        if self._paused_until > self._clock():
            return False
        key = self.key
        if key is not None and key.limiter is not None:
            # both or neither: check the key first, it is the one shared with other shards
            if not key.limiter.has_capacity() or key.limiter._waiters:
                return False
            if not self.bucket.try_acquire():
                return False
            key.limiter.try_acquire()
            return True
        return self.bucket.try_acquire()

    async def take_token(self) -> None:
        """Wait for a pause to end and for a token from the shard's and the key's buckets."""
        # a later 429 may push the pause further while we sleep, so re-check after each sleep
        while (wait := self._paused_until - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        await self.bucket.acquire()
        key = self.key
        if key is not None and key.limiter is not None:
            await key.limiter.acquire()

    @property
    def key_in_flight(self) -> AdjustableSemaphore | None:
        """The key's cap on concurrent requests, held for the duration of each request."""
        return self.key.in_flight if self.key is not None else None

    def record_success(self) -> None:
        if self.control.adaptive and self.control.on_success():
            self._apply()

    def record_rate_limited(self, retry_after_s: float | None, sent_at: float) -> None:
        if retry_after_s:
            self.pause(retry_after_s)
        if self.control.on_rate_limited(retry_after_s, sent_at):
            self._apply()

    def _apply(self) -> None:
        self.bucket.set_rate(self.control.current_qps)
        self.tests.set_limit(int(self.control.current_workers))

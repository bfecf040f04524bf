"""Per-shard and per-key limits: adjustable semaphores, request and token buckets, AIMD.

A shard admits `workers` concurrent tests (AdjustableSemaphore). Every HTTP request takes a
token from the shard's request bucket and from its key's, when they exist, and reserves its
estimated tokens from the TPM buckets (the project's own `buckets.TokenBucket`). AIMD adapts
ranges only: it raises a shard's rate and concurrency one step per quiet interval and halves
them on 429. Server headers pause a shard before the server would refuse.
"""

from __future__ import annotations

import asyncio
import math
import time

from ..types import Range
from .aimd import AimdController
from .buckets import AdjustableLimiter, Clock, TokenBucket, token_bucket
from .headers import LEARN_WINDOW_S, RateLimitHeaders, server_level, shortfall_wait
from .semaphore import AdjustableSemaphore
from .transit import TransitRoom

__all__ = [
    "LEARN_WINDOW_S",
    "AdjustableLimiter",
    "AdjustableSemaphore",
    "AimdController",
    "KeyLimits",
    "ShardLimits",
    "server_level",
]


class KeyLimits:
    """Limits declared on an API key, shared by every shard (of any model) that uses it."""

    def __init__(
        self,
        qps: float | None,
        burst: int,
        max_in_flight: int | None,
        tpm: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        unlimited = qps is None or math.isinf(qps)
        self.limiter = None if unlimited else AdjustableLimiter(qps, burst, clock)  # type: ignore[arg-type]
        self.in_flight = AdjustableSemaphore(max_in_flight) if max_in_flight else None
        self.tokens = token_bucket(tpm, clock) if tpm else None


class ShardLimits:
    """Everything that paces one shard: test slots, request and token buckets, pauses, AIMD.

    `qps` may be unlimited (infinite start): then the shard has no request bucket. `tpm` adds
    a token bucket. Server headers (`observe`) pause the shard before the server would refuse
    and cap its request rate at the limit the server declares.
    """

    def __init__(
        self,
        workers: Range,
        qps: Range,
        burst: int,
        key: KeyLimits | None = None,
        clock: Clock = time.monotonic,
        tpm: float | None = None,
    ) -> None:
        self.control = AimdController(workers, qps, clock=clock)
        self.tests = AdjustableSemaphore(int(workers.start) if math.isfinite(workers.start) else 1)
        self.bucket = None if math.isinf(qps.start) else AdjustableLimiter(qps.start, burst, clock)
        self.tokens = token_bucket(tpm, clock) if tpm else None
        self.key = key
        self._clock = clock
        self._paused_until = 0.0
        #: the request rate the server declared (x-ratelimit-limit-requests / 60), if lower
        self.server_qps: float | None = None
        #: requests sent and not yet answered (for reading `remaining` headers)
        self.in_flight = 0
        #: tokens reserved by requests in flight
        self.reserved = 0.0
        #: requests the server admitted (answered 200), for learning its rate from headers
        self.admitted = 0
        #: the room for requests on their way (`transit.py`); only for a shard with a rate
        self.room = TransitRoom(self.bucket, burst, clock) if self.bucket is not None else None
        #: its semaphore, held by each request on its way
        self.transit = self.room.slots if self.room is not None else None
        self._probe: tuple[float, int, int, bool] | None = None

    @property
    def qps(self) -> float:
        return self.bucket.qps if self.bucket is not None else math.inf

    @property
    def counts_tokens(self) -> bool:
        """Whether requests reserve tokens (the shard or its key has a `tpm`)."""
        return self.tokens is not None or (self.key is not None and self.key.tokens is not None)

    @property
    def paused_until(self) -> float:
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every new request of this shard for `seconds` (a server's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def try_take_token(self) -> bool:
        """Take the request tokens a request needs without waiting, if they are all free now.

        The common case when a shard is below its rate: no coroutine, no timer.
        """
        if self._paused_until > self._clock():
            return False
        key = self.key.limiter if self.key is not None else None
        bucket = self.bucket
        if key is not None:
            # both or neither: check the key first, it is the one shared with other shards
            if key.waiting or not key.has_capacity():
                return False
            if bucket is not None and not bucket.try_acquire():
                return False
            key.try_acquire()
            return True
        return bucket is None or bucket.try_acquire()

    async def take_token(self) -> None:
        """Wait for a pause to end and for a token from the shard's and the key's buckets."""
        await self.wait_pause()
        if self.bucket is not None:
            await self.bucket.acquire()
        key = self.key.limiter if self.key is not None else None
        if key is not None:
            await key.acquire()

    async def wait_pause(self) -> None:
        """Sleep while the shard is paused; a later 429 may push the pause further."""
        for _ in range(1000):  # bounded: each round sleeps until the current pause ends
            wait = self._paused_until - self._clock()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def reserve_tokens(self, amount: float) -> None:
        """Reserve a request's estimated tokens from the shard's and the key's TPM buckets."""
        if self.tokens is not None:
            await self.tokens.acquire(amount)
        key = self.key.tokens if self.key is not None else None
        if key is not None:
            try:
                await key.acquire(amount)
            except BaseException:
                if self.tokens is not None:
                    self.tokens.refund(amount)
                raise
        self.reserved += amount

    def settle_tokens(self, reserved: float, used: float | None) -> None:
        """Settle a reservation with the tokens the response reported (None: keep it all)."""
        if not reserved:
            return
        self.reserved -= reserved
        if used is None:
            return
        for bucket in self._token_buckets():
            if used < reserved:
                bucket.refund(reserved - used)
            elif used > reserved:
                bucket.debit(used - reserved)

    def _token_buckets(self) -> list[TokenBucket]:
        buckets = [self.tokens] if self.tokens is not None else []
        if self.key is not None and self.key.tokens is not None:
            buckets.append(self.key.tokens)
        return buckets

    @property
    def key_in_flight(self) -> AdjustableSemaphore | None:
        """The key's cap on concurrent requests, held for the duration of each request."""
        return self.key.in_flight if self.key is not None else None

    def observe(self, headers: RateLimitHeaders, counted: float) -> None:
        """Pace by the server's `x-ratelimit-*` headers of a response just received.

        - a declared limit (`x-ratelimit-limit-*`, per minute) below the shard's rate caps it;
        - `remaining` brings the shard's bucket down to what the server has left, less what
          is already on its way (requests in flight, tokens reserved), so the shard waits
          instead of being refused; it never raises a bucket;
        - without a bucket to bring down (no declared limit, or no `tpm` configured), a
          shortfall pauses the shard until the stated reset.

        `counted` is the tokens this request reserved and the server already counted in
        its `remaining` (call before settling the reservation).
        """
        others = float(self.in_flight)
        if headers.limit_requests:
            self._cap_rate(headers.limit_requests / 60.0)
        remaining = headers.remaining_requests
        if remaining is not None:
            if self.bucket is not None:
                left = server_level(remaining, headers.limit_requests, headers.reset_requests_s)
                if left is None:
                    # the server has at most remaining + 1 (it reports whole requests); until
                    # its rate is known, assume the least it may have
                    known = self.server_qps is not None
                    left = remaining + (1.0 if known else 0.0)
                self.bucket.clamp(left - others - 1e-6)
                if not headers.limit_requests:
                    self._learn_rate(remaining)
            elif remaining < others + 1:
                self.pause(shortfall_wait(remaining, others + 1, None, headers.reset_requests_s))
        tokens = headers.remaining_tokens
        if tokens is not None:
            if headers.limit_tokens and self.tokens is not None:
                rate = headers.limit_tokens / 60.0
                if rate < self.tokens.rate_per_s:
                    self.tokens.set_rate(rate)
            others_reserved = self.reserved - counted
            if self.tokens is not None:
                self.tokens.clamp(tokens + 1.0 - others_reserved)
            else:
                needed = others_reserved + max(counted, 1.0)
                wait = shortfall_wait(tokens, needed, headers.limit_tokens, headers.reset_tokens_s)
                if wait > 0:
                    self.pause(wait)

    async def enter_transit(self) -> None:
        """Wait for room for one more request on its way (see `transit.TransitRoom`)."""
        if self.room is not None:
            await self.room.enter()

    def record_latency(self, seconds: float) -> None:
        """An answer's round trip: the room for requests on their way follows it."""
        if self.room is not None:
            self.room.record_latency(seconds)

    def _cap_rate(self, server_qps: float) -> None:
        if self.server_qps == server_qps:
            return
        self.server_qps = server_qps
        if self.bucket is not None:
            self.bucket.set_rate(min(self.control.current_qps, server_qps))

    def _learn_rate(self, remaining: int) -> None:
        """Estimate the server's refill rate when it states no limit (Azure's headers).

        Over a window of at least LEARN_WINDOW_S in which the server ran out (remaining 0,
        so its bucket was never full and refilled all along), its rate is what it admitted
        plus what it gained: (admitted + remaining_now - remaining_then) / elapsed.
        """
        now = self._clock()
        probe = self._probe
        if probe is None:
            self._probe = (now, remaining, self.admitted, remaining == 0)
            return
        since, then, admitted, scarce = probe
        scarce = scarce or remaining == 0
        if now - since < LEARN_WINDOW_S:
            self._probe = (since, then, admitted, scarce)
            return
        if scarce:
            rate = (self.admitted - admitted + remaining - then) / (now - since)
            if rate > 0:
                self._cap_rate(rate)
        self._probe = (now, remaining, self.admitted, remaining == 0)

    def record_success(self) -> None:
        if self.control.adaptive and self.control.on_success():
            self._apply()

    def record_rate_limited(self, retry_after_s: float | None, sent_at: float) -> None:
        if retry_after_s:
            self.pause(retry_after_s)
            if self.bucket is not None:
                # the server's bucket is empty for that long: so is ours, or the requests that
                # waited out the pause would leave together and be refused again
                self.bucket.clamp(1.0 - self.bucket.rate_per_s * retry_after_s)
        if self.control.adaptive and self.control.on_rate_limited(retry_after_s, sent_at):
            self._apply()

    def _apply(self) -> None:
        if self.bucket is not None:
            qps = self.control.current_qps
            if self.server_qps is not None:
                qps = min(qps, self.server_qps)
            self.bucket.set_rate(qps)
        self.tests.set_limit(int(self.control.current_workers))

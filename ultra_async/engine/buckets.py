"""The engine's own token bucket: amounts, debt, FIFO waiters, a rate that can change.

One small class paces both requests (one unit per request, refilled at `qps`) and tokens
(a request's estimated tokens, refilled at `tpm / 60`). It owns all of its state; nothing here
reads or writes another library's attributes.

A bucket holds up to `capacity` units and refills continuously. A request for `amount` units
is admitted when the bucket holds at least `min(amount, capacity)`, and then takes all of
`amount`: a request larger than the bucket waits for a full bucket and leaves it in debt, so a
long prompt is never refused forever. Waiters are served first come, first served; one timer
(armed only while someone waits) wakes the head of the line when it can go.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]

# float refill can land a hair below a whole unit at exactly the computed time
_EPS = 1e-9


class TokenBucket:
    """Up to `capacity` units refilled at `rate_per_s`; `acquire(amount)` waits in line."""

    __slots__ = ("_clock", "_level", "_timer", "_updated", "_waiters", "capacity", "rate_per_s")

    def __init__(self, rate_per_s: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)) or capacity <= 0:
            raise ValueError("rate_per_s must be a positive number and capacity > 0")
        self.rate_per_s = rate_per_s
        self.capacity = float(capacity)
        self._clock = clock
        self._level = float(capacity)
        self._updated = clock()
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def level(self) -> float:
        """Units in the bucket now (negative while in debt)."""
        self._refill()
        return self._level

    @property
    def waiting(self) -> int:
        """Tasks in line for units."""
        return len(self._waiters)

    def has_capacity(self, amount: float = 1.0) -> bool:
        """Whether `amount` could be taken now (ignoring the line)."""
        self._refill()
        return self._level >= min(amount, self.capacity) - _EPS

    def try_acquire(self, amount: float = 1.0) -> bool:
        """Take `amount` now if nobody is in line and the bucket allows it; never waits."""
        if self._waiters or not self.has_capacity(amount):
            return False
        self._level -= amount
        return True

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait in line until `amount` can be taken, then take it."""
        if self.try_acquire(amount):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((amount, fut))
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # granted and cancelled in the same step: the units go back to the bucket
                self.refund(amount)
            else:
                self._remove(fut)
                self._serve()
            raise

    def refund(self, amount: float) -> None:
        """Give back units a request reserved but did not use (capped at the capacity)."""
        self._refill()
        self._level = min(self.capacity, self._level + amount)
        self._serve()

    def debit(self, amount: float) -> None:
        """Take units a request used beyond its reservation (the bucket may go into debt)."""
        self._refill()
        self._level -= amount

    def clamp(self, max_level: float) -> None:
        """Lower the level to `max_level` when above it (what a server says it has left)."""
        self._refill()
        if self._level > max_level:
            self._level = max_level
            if self._waiters:
                self._arm()

    def set_rate(self, rate_per_s: float) -> None:
        """Change the refill rate; what is drained stays drained, waiters keep their place."""
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError("rate_per_s must be a positive number")
        self._refill()  # settle at the old rate first, so no capacity is invented
        self.rate_per_s = rate_per_s
        self._serve()

    # -- internals -------------------------------------------------------------------------

    def _refill(self) -> None:
        now = self._clock()
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate_per_s)
            self._updated = now

    def _remove(self, fut: asyncio.Future[None]) -> None:
        for entry in self._waiters:
            if entry[1] is fut:
                self._waiters.remove(entry)
                return

    def _serve(self) -> None:
        """Hand units to the head of the line while the bucket allows; re-arm the timer."""
        self._refill()
        waiters = self._waiters
        while waiters:
            amount, fut = waiters[0]
            if fut.done():  # cancelled while waiting
                waiters.popleft()
                continue
            if self._level < min(amount, self.capacity) - _EPS:
                break
            waiters.popleft()
            self._level -= amount
            fut.set_result(None)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiters:
            return
        amount = self._waiters[0][0]
        missing = min(amount, self.capacity) - self.level
        delay = max(0.0, missing / self.rate_per_s)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._serve()


class AdjustableLimiter(TokenBucket):
    """A request-rate bucket: `burst` requests back to back, at most `qps` per second.

    It refills at `qps · PACING`, a hair under the configured rate: requests reach a server
    with jitter (two sent 20 ms apart may arrive 5 ms apart), and a client running exactly at
    a server's rate has no slack to absorb that. One percent builds a token of slack every
    hundred requests and costs one percent of throughput.
    """

    __slots__ = ("burst",)

    def __init__(self, qps: float, burst: int = 1, clock: Clock = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        super().__init__(qps * PACING, burst, clock)
        self.burst = burst

    @property
    def qps(self) -> float:
        """The configured rate (the bucket refills at `qps · PACING`)."""
        return self.rate_per_s / PACING

    def set_rate(self, rate_per_s: float) -> None:
        """Change the configured rate (requests per second)."""
        super().set_rate(rate_per_s * PACING)


#: the share of a configured request rate the engine paces at (see AdjustableLimiter)
PACING = 0.99


def token_bucket(tpm: float, clock: Clock = time.monotonic) -> TokenBucket:
    """A tokens-per-minute bucket: refilled at `tpm / 60` per second, one second's worth deep."""
    rate = tpm / 60.0
    return TokenBucket(rate, rate * TOKEN_BURST_S, clock)


#: seconds of tokens a TPM bucket may spend at once (its capacity is `tpm / 60 · TOKEN_BURST_S`)
TOKEN_BURST_S = 1.0

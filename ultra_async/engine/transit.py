"""The room for a shard's requests on their way: what its rate needs for a round trip, plus burst.

A server that stalls (a busy host, a garbage collection) keeps refilling only up to its burst,
while a client at full rate keeps sending: everything sent during the stall lands at once and
all but `burst` requests are refused. With at most `burst + qps · 2 · latency` requests on their
way (latency smoothed over the recent responses), what piles up in a stall is what the server
can take. Little's law puts the requests a rate needs on their way at `qps · latency`, so the
bound never binds while the server answers as usual.
"""

from __future__ import annotations

import asyncio
import math

from .buckets import AdjustableLimiter, Clock
from .semaphore import AdjustableSemaphore

#: how often the room for requests on their way is widened while no answer has come yet
TRANSIT_GROWTH_S = 0.05


class TransitRoom:
    """A semaphore each request holds on its way, sized from the rate and the round trip."""

    def __init__(self, bucket: AdjustableLimiter, burst: int, clock: Clock) -> None:
        self._bucket = bucket
        self._burst = burst
        self._clock = clock
        #: held by each request on its way
        self.slots = AdjustableSemaphore(1)
        self._latency_s: float | None = None
        self._first_sent: float | None = None

    async def enter(self) -> None:
        """Wait for room for one more request on its way.

        Before any answer the round trip is unknown; it is at least the time since the first
        request left, so the room is `1 + qps · that time`: one request at first (its answer
        tells the server's state), then as many as a rate needs for a round trip that slow.
        A model that thinks for a minute is not held to one request for that minute.
        """
        slots = self.slots
        for _ in range(1_000_000):  # bounded: each round waits at most TRANSIT_GROWTH_S
            if self._latency_s is not None:
                break
            now = self._clock()
            if self._first_sent is None:
                self._first_sent = now
            else:
                room = 1 + math.floor(self._bucket.qps * (now - self._first_sent))
                if room > slots.limit:
                    slots.set_limit(room)
            if slots.try_acquire():
                return
            try:
                async with asyncio.timeout(TRANSIT_GROWTH_S):
                    await slots.acquire()
                return
            except TimeoutError:
                continue
        await slots.acquire()

    def record_latency(self, seconds: float) -> None:
        """An answer's round trip: the room becomes `burst + qps · 2 · smoothed latency`."""
        last = self._latency_s
        self._latency_s = seconds if last is None else last + 0.1 * (seconds - last)
        room = self._burst + math.floor(self._bucket.qps * 2.0 * self._latency_s)
        if room != self.slots.limit:
            self.slots.set_limit(room)

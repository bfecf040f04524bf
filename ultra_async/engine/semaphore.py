"""A semaphore whose limit can change while it is held, and that never loses a cancellation."""

from __future__ import annotations

import asyncio
from collections import deque


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
            elif fut in self._waiters:  # _wake may already have dropped a cancelled waiter
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

"""The aggregator's intake: many producers hand results over; one consumer takes them all."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Intake(Generic[T]):
    """A bounded hand-over where each wake-up of the consumer takes everything waiting.

    `put_nowait` appends to a plain list while fewer than `limit` items wait (no future, no
    wake-up beyond the consumer's). Beyond that, `put` waits in line and the consumer moves the
    item in when it takes a batch (backpressure, in arrival order). Create inside the running
    loop; everything runs on that loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: list[T] = []
        self._blocked: deque[tuple[asyncio.Future[None], T]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        """Items not taken yet, with those of producers still waiting for room."""
        return len(self._items) + len(self._blocked)

    def put_nowait(self, item: T) -> bool:
        """Add `item` if there is room and nobody waits before it; False otherwise."""
        if len(self._items) >= self.limit or self._blocked:
            return False
        self._items.append(item)
        self._wake()
        return True

    async def put(self, item: T) -> None:
        """Add `item`, waiting for room; raises what `refuse_waiting` was given."""
        if self.put_nowait(item):
            return
        admitted = asyncio.get_running_loop().create_future()
        self._blocked.append((admitted, item))
        try:
            await admitted
        except asyncio.CancelledError:
            # still in line (the cancellation cancelled `admitted`): leave the line; once
            # admitted, the item is already in and stays
            if (admitted.cancelled() or not admitted.done()) and (admitted, item) in self._blocked:
                self._blocked.remove((admitted, item))
            raise

    async def take_all(self) -> list[T]:
        """Everything waiting, once there is something; [] when closed and empty."""
        while not self._items:
            if self._closed:
                return []
            self._wakeup = wakeup = asyncio.get_running_loop().create_future()
            try:
                await wakeup
            finally:
                self._wakeup = None
        batch, self._items = self._items, []
        # room now: producers waiting in line move in, in their order
        while self._blocked and len(self._items) < self.limit:
            admitted, item = self._blocked.popleft()
            if not admitted.done():  # a cancelled producer's item is not taken
                self._items.append(item)
                admitted.set_result(None)
        return batch

    def close(self) -> None:
        """No more items will come: `take_all` returns [] once everything was taken."""
        self._closed = True
        self._wake()

    def refuse_waiting(self, error: BaseException) -> None:
        """Producers waiting for room get `error`: nobody will take their items."""
        while self._blocked:
            admitted, _ = self._blocked.popleft()
            if not admitted.done():
                admitted.set_exception(error)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

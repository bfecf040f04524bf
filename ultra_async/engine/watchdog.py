"""Per-test deadlines without a timer per test."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class Watchdog:
    """Cancels tests past their deadline: one periodic check for all tests, not a timer each.

    A test is watched only while it awaits `evaluate`, so the cancellation always lands there.
    """

    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._deadlines[task] = deadline

    def forget(self, task: asyncio.Task[Any]) -> None:
        self._deadlines.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            if task.cancelling():  # cancelled but evaluate finished first: undo our cancel
                task.uncancel()

    def expired(self, task: asyncio.Task[Any]) -> bool:
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def run(self, tick_s: float) -> None:
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            late = [t for t, deadline in self._deadlines.items() if deadline <= now]
            for task in late:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()

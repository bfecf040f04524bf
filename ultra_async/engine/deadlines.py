"""Test deadlines on one timer: starting a test's deadline is an append, not a timer of its own.

Tests of one deadline length expire in the order they start, so each length keeps a line in
start order and one timer waits for the earliest head of all lines. A finished test is marked
and leaves its line when it reaches the head; the line is compacted when finished tests held
back by a slow one outnumber those running. An expired test's task is cancelled, and the test
tells its own deadline's cancellation from any other the way `asyncio.timeout` does: by the
task's count of cancel requests (`Task.uncancel`), so an outside cancel arriving in the same
step is never taken for the deadline.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any

#: a timer may run this much before its time (the loop's clock granularity); such a head counts
_SLACK_S = 1e-3
#: finished entries a line may hold beyond twice the tests running before it is compacted
_COMPACT_ABOVE = 64


class Deadline:
    """One test's deadline: the task it cancels and whether it did."""

    __slots__ = ("at", "cancelling", "done", "expired", "line", "task")

    def __init__(self, task: asyncio.Task[Any], at: float, line: deque[Deadline]) -> None:
        self.task = task
        self.at = at
        self.line = line
        #: the task's pending cancel requests when the deadline started
        self.cancelling = task.cancelling()
        self.done = False
        self.expired = False


class Deadlines:
    """The deadlines of the tests of one run, on a single timer."""

    def __init__(self) -> None:
        self._lines: dict[float, deque[Deadline]] = {}
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, seconds: float, task: asyncio.Task[Any] | None = None) -> Deadline:
        """The deadline of a test starting now in `task` (the current one by default)."""
        if task is None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a deadline needs a running task")
        loop = task.get_loop()
        line = self._lines.get(seconds)
        if line is None:
            line = self._lines[seconds] = deque()
        deadline = Deadline(task, loop.time() + seconds, line)
        line.append(deadline)
        self._running += 1
        if deadline.at < self._timer_at:
            self._schedule(loop, deadline.at)
        return deadline

    def finish(self, deadline: Deadline) -> bool:
        """End a test's deadline; True when it expired and no other cancel is pending.

        Call it once the test's code returned or raised, before anything else awaits.
        """
        if deadline.done:
            return False
        deadline.done = True
        self._running -= 1
        line = deadline.line
        while line and line[0].done:
            line.popleft()
        if len(line) > 2 * self._running + _COMPACT_ABOVE:
            running = [d for d in line if not d.done]
            line.clear()
            line.extend(running)
        if not deadline.expired:
            return False
        # the expiry's cancel request is taken back; any other means an outside cancel
        return deadline.task.uncancel() <= deadline.cancelling

    def close(self) -> None:
        """Stop the timer (the run is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _schedule(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = loop.time() + _SLACK_S
        earliest = math.inf
        for line in self._lines.values():
            while line and (line[0].done or line[0].at <= now):
                deadline = line.popleft()
                if not deadline.done and not deadline.expired:
                    deadline.expired = True
                    deadline.task.cancel()
            if line:
                earliest = min(earliest, line[0].at)
        if earliest < math.inf:
            self._schedule(loop, earliest)

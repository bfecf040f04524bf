"""The aggregator's database writes: batched, spaced, in a thread, grouped while one is running."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import structlog

from ..errors import StorageError
from .export import DatabaseDocument
from .stats import Snapshot, StatsTree
from .storage import DATABASE_FILE, Journal, atomic_write, timestamp

FsyncPolicy = Literal["batch", "always", "never"]
#: the least time between the starts of two database writes during a run (the last never waits)
MIN_WRITE_INTERVAL_S = 1.0
#: runs a function in the aggregator's threads
InThread = Callable[..., Awaitable[Any]]
log = structlog.get_logger("ultra_async.results.aggregator")


class DatabaseWriter:
    """Writes `master_database.json` from the statistics, never on the event loop.

    A write is due every `buffer_size` counted results, `flush_interval_s` after the first
    result not yet written, and at `close`. Two writes during a run start at least
    `min_write_interval_s` apart; a write due while one is running goes into the next one
    (group commit). Each write re-renders only the nodes changed since the previous one.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        buffer_size: int,
        flush_interval_s: float,
        min_write_interval_s: float,
        fsync: FsyncPolicy,
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1 (got {buffer_size})")
        if fsync not in ("batch", "always", "never"):
            raise ValueError(f"fsync must be batch, always or never (got {fsync!r})")
        self.out_dir = out_dir
        self.buffer_size = buffer_size
        self.flush_interval_s = flush_interval_s
        self.min_write_interval_s = min_write_interval_s
        self.fsync: FsyncPolicy = fsync
        self.writes = 0
        self.write_errors = 0
        self.bytes_written = 0
        #: the last write's failure, None once a write succeeded again
        self.error: StorageError | None = None
        self._tree: StatsTree | None = None
        self._journal: Journal | None = None
        self._document: DatabaseDocument | None = None
        self._in_thread: InThread | None = None
        self._pending = 0  # results counted in memory but not yet in a database write
        self._written_once = False
        self._writer: asyncio.Task[None] | None = None
        self._write_again = False
        self._resync = False
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_write = -math.inf  # loop time the latest write started

    def start(
        self, tree: StatsTree, journal: Journal, document: DatabaseDocument, in_thread: InThread
    ) -> None:
        """What the writes need, once the results directory is open."""
        self._tree, self._journal, self._document = tree, journal, document
        self._in_thread = in_thread

    def counted(self, results: int) -> None:
        """`results` more results are in the statistics: a write is due now or on the timer."""
        self._pending += results
        if self._pending >= self.buffer_size:
            self._request_write()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_interval_s, self._timer_fired)

    async def close(self) -> None:
        """Wait for the write under way, then write what is left (at once); raise its failure."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            await self._writer
        if self._in_thread is not None and (self._pending or not self._written_once):
            self._request_write()
            assert self._writer is not None
            await self._writer

    def _timer_fired(self) -> None:
        self._timer = None
        self._request_write()

    def _request_write(self) -> None:
        """A write is due: start it, unless one ran less than the minimum interval ago.

        At thousands of results per second a write per `buffer_size` results would rewrite
        the file back to back; the database (always rebuilt from the journal, which is
        written first) may lag by `min_write_interval_s` instead. The final write never waits.
        """
        if self._writer is not None and not self._writer.done():
            # Group commit: what arrives during a write goes into the next one.
            self._write_again = True
            return
        loop = asyncio.get_running_loop()
        wait = 0.0 if self._closing else self._last_write + self.min_write_interval_s - loop.time()
        if wait > 0:
            self._write_after(loop, wait)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._writer = asyncio.create_task(self._write_loop(), name="ultra_async_db_write")

    def _write_after(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        """Have a write start in `wait` seconds, unless one is already due by then."""
        if self._timer is not None:
            if self._timer.when() <= loop.time() + wait:
                return
            self._timer.cancel()
        self._timer = loop.call_later(wait, self._timer_fired)

    async def _write_loop(self) -> None:
        assert self._tree is not None and self._in_thread is not None
        loop = asyncio.get_running_loop()
        while True:
            self._write_again = False
            self._last_write = loop.time()
            full = self._resync
            snap = self._tree.full_snapshot() if full else self._tree.snapshot()
            self._resync = False
            pending, self._pending = self._pending, 0
            try:
                written = await self._in_thread(self._write, snap, full)
            except Exception as exc:
                self._pending += pending  # retried with the next write
                self.write_errors += 1
                if not isinstance(exc, StorageError):
                    # Not a disk problem: start the next write's document from scratch.
                    self._resync = True
                    exc = StorageError(f"could not write the database: {exc!r}")
                if self.error is None or str(self.error) != str(exc):
                    # once per distinct failure: a full disk must not flood the console
                    log.error("database_write_failed", error=str(exc))
                self.error = exc
            else:
                self.writes += 1
                self.bytes_written += written
                self._written_once = True
                if self.error is not None:
                    log.info("database_write_recovered")
                self.error = None
            if not self._write_again:
                return
            wait = self._last_write + self.min_write_interval_s - loop.time()
            if wait > 0 and not self._closing:
                # the next write once the interval has passed (this task is done by then)
                self._write_after(loop, wait)
                return

    def _write(self, snap: Snapshot, full: bool) -> int:
        # Runs in a thread; only one runs at a time, so it owns the document.
        assert self._journal is not None and self._document is not None
        if full:
            self._document = DatabaseDocument(self._document.created_at)
        self._document.update(snap)
        # The journal is fsynced before the rename, so the database on disk never counts a
        # result the journal on disk does not hold.
        if self.fsync != "never":
            self._journal.sync()
        chunks = self._document.chunks(timestamp())
        return atomic_write(self.out_dir / DATABASE_FILE, chunks, durable=self.fsync != "never")

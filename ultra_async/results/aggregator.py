"""The single consumer of results: journal first, then statistics, then batched database writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog

from .._redact import redact_bytes
from ..errors import StorageError
from ..naming import ModelNames
from ..types import TestResult
from ._db_writer import MIN_WRITE_INTERVAL_S, DatabaseWriter, FsyncPolicy
from ._intake import Intake
from ._opening import open_results
from .layout import Layout
from .records import journal_line
from .replay import remember_records
from .stats import INFRA, TOTAL, StatsTree, invalid_reason
from .storage import JOURNAL_FILE, Journal

__all__ = ["MIN_WRITE_INTERVAL_S", "Aggregator", "FsyncPolicy"]
log = structlog.get_logger("ultra_async.results.aggregator")

_T = TypeVar("_T")


class Aggregator:
    """Owns the statistics: journals every result, counts it once, writes the database in batches.

    Use as `async with Aggregator(out_dir) as agg: await agg.submit(result)`. On entry the
    existing journal is loaded (resume); on exit everything submitted is journaled and the
    database written, also when the body is cancelled.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        names: ModelNames | None = None,
        buffer_size: int = 3,
        flush_interval_s: float = 2.0,
        min_write_interval_s: float = MIN_WRITE_INTERVAL_S,
        fsync: FsyncPolicy = "batch",
        queue_size: int = 1024,
        layout: Layout | None = None,
        on_batch: Callable[[list[TestResult]], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.fsync: FsyncPolicy = fsync
        self._queue_size = queue_size
        self._names = names
        #: called in the writer thread with each journaled batch (transcripts, cache entries)
        self._on_batch = on_batch
        self._layout = layout
        self._tree = StatsTree(names, layout)
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._db = DatabaseWriter(
            self.out_dir,
            buffer_size=buffer_size,
            flush_interval_s=flush_interval_s,
            min_write_interval_s=min_write_interval_s,
            fsync=fsync,
        )
        self._journal: Journal | None = None
        self._intake: Intake[TestResult] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None

    @property
    def done_ids(self) -> set[str]:
        """Ids of items with a completed record (journal at start and this run)."""
        return self._tree.done_ids()

    def journaled(self) -> dict[str, tuple[str, str]]:
        """Items with a final record: the record's kind and the case digest it ran with."""
        return self._tree.journaled()

    @property
    def layout(self) -> Layout:
        """The suite layout of the statistics (from the journal, or as given)."""
        return self._tree.layout

    async def expect_replacements(self, item_ids: set[str]) -> None:
        """Get ready for records that replace these items' final records (a rerun of errors or
        changed cases): their current records are read back so their counts can be taken out.
        """
        if item_ids:
            journal = self.out_dir / JOURNAL_FILE
            await self._in_thread(remember_records, self._tree, journal, frozenset(item_ids))

    @property
    def counts(self) -> dict[str, int]:
        """Counters: received, journaled, duplicates, infra_errors, db_writes, bytes_written, ..."""
        db = self._db
        return {
            **self._counts,
            "db_writes": db.writes,
            "db_write_errors": db.write_errors,
            "bytes_written": db.bytes_written,
        }

    async def __aenter__(self) -> Aggregator:
        # Own threads: one appends to the journal, one writes the database, so neither waits
        # behind the other or behind other users of the loop's default executor.
        executor = ThreadPoolExecutor(2, thread_name_prefix="ultra_async_aggregator")
        self._executor = executor
        loading = executor.submit(self._load)
        try:
            await asyncio.wrap_future(loading)
        except BaseException:
            # Also when cancelled: the thread finishes loading, then releases the journal lock.
            loading.add_done_callback(lambda _: self._release_journal())
            executor.shutdown(wait=False)
            raise
        self._intake = Intake(self._queue_size)
        self._consumer = asyncio.create_task(
            self._consume(self._intake), name="ultra_async_aggregator"
        )
        return self

    def _release_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _load(self) -> None:
        # Runs in a thread: reading a large journal must not stall the caller's event loop.
        opened = open_results(self.out_dir, self._names, self._layout)
        self._journal, self._tree = opened.journal, opened.tree
        self._db.start(opened.tree, opened.journal, opened.document, self._in_thread)
        root = self._tree.nodes[()]
        log.info(
            "aggregator_started",
            out_dir=str(self.out_dir),
            completed=root[TOTAL],
            infra_errors=root[INFRA],
            journal_records=opened.records,
        )

    async def submit(self, result: TestResult) -> None:
        """Hand a result to the aggregator; waits while `queue_size` others wait (backpressure)."""
        intake = self._intake
        if intake is None:
            raise RuntimeError("use the Aggregator inside `async with` before submitting")
        self._raise_failure()
        if self._closing:
            raise RuntimeError(
                "the aggregator is closing; submit results before leaving `async with`"
            )
        if not intake.put_nowait(result):
            await intake.put(result)  # full: the consumer moves it in when it takes a batch

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure_error()

    def _failure_error(self) -> StorageError:
        assert self._failure is not None
        if isinstance(self._failure, StorageError):
            return self._failure
        error = StorageError(f"the aggregator failed: {self._failure!r}")
        error.__cause__ = self._failure
        return error

    async def _consume(self, intake: Intake[TestResult]) -> None:
        # Each wake-up takes everything queued, so one journal append (one thread hand-off)
        # covers all the results that arrived while the previous append was under way.
        try:
            while batch := await intake.take_all():
                await self._absorb(batch)
        except asyncio.CancelledError:
            intake.refuse_waiting(
                StorageError("the aggregator stopped before accepting the result")
            )
            raise
        except BaseException as exc:
            self._failure = exc
            log.error("aggregator_failed", error=str(exc))
            intake.refuse_waiting(self._failure_error())

    async def _absorb(self, batch: list[TestResult]) -> None:
        tree, accepted, lines, originals = self._tree, [], [], []
        layout = tree.layout
        final_here: set[str] = set()
        invalid = duplicates = 0
        for result in batch:
            problem = invalid_reason(result, layout)
            if problem is not None:
                # Never journal what cannot be counted: it would break every later rebuild.
                invalid += 1
                log.error("result_invalid", item=str(result.item_id), reason=problem)
                continue
            item_id = result.item_id
            if item_id in final_here or (tree.is_done(item_id) and not tree.replaces(result)):
                duplicates += 1
                log.warning("result_duplicate", item=item_id, shard=result.shard)
                continue
            if result.is_final:
                final_here.add(item_id)
            normal = tree.normalize(result)
            accepted.append(normal)
            originals.append(result)
            lines.append(journal_line(normal, result.model))
        counts = self._counts
        counts["received"] += len(batch)
        counts["invalid"] += invalid
        counts["duplicates"] += duplicates
        if not accepted:
            return
        # The last guard: no text in the journal holds 8 characters of a key (one scan for the
        # batch: a key has no line break, so no run of one spans two lines).
        data = redact_bytes(b"".join(lines))
        # The journal first: the database never counts a result the journal does not hold.
        # The append runs in a thread because a busy disk can block even a small write.
        await self._in_thread(self._append, data, originals)
        counts["journaled"] += len(accepted)
        # `accepted` holds the normalized records: the tree need not normalize them again
        for kind in tree.add_results(accepted, normalized=True):
            counted = _COUNTED_AS.get(kind)
            if counted is not None:
                counts[counted] += 1
        self._db.counted(len(accepted))

    def _append(self, data: bytes, results: list[TestResult]) -> None:
        assert self._journal is not None
        self._journal.append(data)
        if self.fsync == "always":
            self._journal.sync()
        if self._on_batch is not None:
            self._on_batch(results)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        closing = asyncio.ensure_future(self._close())
        cancelled = False
        while not closing.done():
            try:
                # Shielded: a cancellation of the caller must not cut the final flush short.
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled or closing.cancelled():
            raise asyncio.CancelledError
        error = closing.exception()
        if error is not None:
            if exc is None:
                raise error
            log.error("aggregator_close_failed", error=str(error))

    async def _close(self) -> None:
        # from here on no submit is taken, and no database write waits for its interval
        self._closing = True
        try:
            consumer = self._consumer
            if consumer is not None and not consumer.done():
                # The consumer takes what is queued (and what blocked producers hand over),
                # then returns once nothing is left.
                assert self._intake is not None
                self._intake.close()
                await asyncio.wait({consumer})
            await self._db.close()
        finally:
            self._release_journal()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
        lost = len(self._intake) if self._intake is not None else 0
        log.info("aggregator_closed", **self.counts, unrecorded=lost)
        self._raise_failure()
        if self._db.error is not None:
            raise self._db.error


_ERROR_COUNTERS = ("infra_errors", "request_errors", "evaluate_errors")
#: what the aggregator counts on the event loop (database writes are counted by their writer)
_COUNTERS = ("received", "journaled", "duplicates", "invalid", *_ERROR_COUNTERS, "replaced")
#: the aggregator's counter of each way `StatsTree.add_result` can count a record
_COUNTED_AS = {
    "infra_error": "infra_errors",
    "request_error": "request_errors",
    "evaluate_error": "evaluate_errors",
    "replaced": "replaced",
}

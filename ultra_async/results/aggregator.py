"""The single consumer of results: journal first, then statistics, then batched database writes."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import orjson
import structlog

from .._redact import redact_bytes
from ..errors import DatabaseError, StorageError
from ..naming import ModelNames
from ..types import TestResult
from ._intake import Intake
from .export import DatabaseDocument
from .layout import Layout
from .replay import header_line, replay
from .stats import INFRA, SCHEMA_VERSION, TOTAL, Snapshot, StatsTree, invalid_reason
from .storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    Journal,
    JournalScan,
    atomic_write,
    iter_journal,
    raise_if_damaged,
    read_database,
    remove_stale_temp_files,
    schema_of,
    set_aside,
    timestamp,
)

FsyncPolicy = Literal["batch", "always", "never"]
#: the least time between the starts of two database writes during a run (the last never waits)
MIN_WRITE_INTERVAL_S = 1.0
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
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1 (got {buffer_size})")
        if fsync not in ("batch", "always", "never"):
            raise ValueError(f"fsync must be batch, always or never (got {fsync!r})")
        self.out_dir = Path(out_dir)
        self.buffer_size = buffer_size
        self.flush_interval_s = flush_interval_s
        self.min_write_interval_s = min_write_interval_s
        self.fsync: FsyncPolicy = fsync
        self._queue_size = queue_size
        self._names = names
        #: called in the writer thread with each journaled batch (transcripts, cache entries)
        self._on_batch = on_batch
        self._layout = layout
        self._tree = StatsTree(names, layout)
        self._counts = dict.fromkeys(
            (
                "received",
                "journaled",
                "duplicates",
                "invalid",
                "infra_errors",
                "request_errors",
                "evaluate_errors",
                "replaced",
                "db_writes",
                "db_write_errors",
            ),
            0,
        )
        self._bytes_written = 0
        self._pending = 0  # results counted in memory but not yet in a database write
        self._written_once = False
        self._journal: Journal | None = None
        self._document: DatabaseDocument | None = None
        self._intake: Intake[TestResult] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._write_again = False
        self._resync = False
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_write = -math.inf  # loop time the latest database write started
        self._executor: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None
        self._write_error: StorageError | None = None

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
            await self._in_thread(self._remember, frozenset(item_ids))

    def _remember(self, item_ids: frozenset[str]) -> None:
        self._tree.keep(item_ids)
        for entry in iter_journal(self.out_dir / JOURNAL_FILE):
            if isinstance(entry, TestResult) and entry.item_id in item_ids:
                self._tree.remember(entry)

    @property
    def counts(self) -> dict[str, int]:
        """Counters: received, journaled, duplicates, infra_errors, db_writes, bytes_written, ..."""
        return {**self._counts, "bytes_written": self._bytes_written}

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
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the output directory {self.out_dir}: {exc.strerror}"
            ) from None
        db_path, journal_path = self.out_dir / DATABASE_FILE, self.out_dir / JOURNAL_FILE
        created_journal = not journal_path.exists()
        # The lock first: nothing in the directory is touched while another run owns it.
        journal = Journal.open(journal_path)
        try:
            existing = _existing_database(db_path)
            if existing is not None and existing.get("version") != SCHEMA_VERSION:
                if created_journal:
                    journal_path.unlink()
                raise DatabaseError(
                    f"{db_path} has schema {existing.get('version')!r}, not {SCHEMA_VERSION}; run "
                    f"`python -m ultra_async db migrate --out {self.out_dir}` to import it, "
                    "or start over with --fresh (the old files are kept in a backup folder)"
                )
            created_at = str((existing or {}).get("created_at") or timestamp())
            remove_stale_temp_files(db_path)
            scan = JournalScan()
            self._tree = replay(journal_path, scan, names=self._names, layout=self._layout)
            raise_if_damaged(journal_path, scan)
            if scan.records == 0 and existing is not None and _has_counts(existing):
                raise DatabaseError(
                    f"{db_path} holds results but {journal_path} is missing or empty, so they "
                    f"cannot be carried forward; run `python -m ultra_async db migrate --out "
                    f"{self.out_dir}` to import them, or start over with --fresh"
                )
            if scan.records == 0 and not scan.bad_lines and not self._tree.layout.workflow:
                # a new journal names its suite first, so a rebuild knows the dimensions
                # (a journal without that line is the workflow benchmark's, as it always was)
                journal.append(orjson.dumps(header_line(self._tree.layout)) + b"\n")
        except BaseException:
            journal.close()
            raise
        self._journal = journal
        self._document = DatabaseDocument(created_at, self._tree.layout)
        self._document.update(self._tree.full_snapshot())
        root = self._tree.nodes[()]
        log.info(
            "aggregator_started",
            out_dir=str(self.out_dir),
            completed=root[TOTAL],
            infra_errors=root[INFRA],
            journal_records=scan.records,
        )

    async def submit(self, result: TestResult) -> None:
        """Hand a result to the aggregator; waits while `queue_size` others wait (backpressure)."""
        intake = self._intake
        if intake is None:
            raise RuntimeError("use the Aggregator inside `async with` before submitting")
        if self._failure is not None:
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
            lines.append(_journal_line(normal, result.model))
        counts = self._counts
        counts["received"] += len(batch)
        counts["invalid"] += invalid
        counts["duplicates"] += duplicates
        if not accepted:
            return
        # The journal first: the database never counts a result the journal does not hold.
        # The append runs in a thread because a busy disk can block even a small write.
        # the last guard: no text in the journal holds 8 characters of a key (one scan for the
        # batch: a key has no line break, so no run of one spans two lines)
        data = redact_bytes(b"".join(lines))
        await self._in_thread(self._append, data, originals)
        counts["journaled"] += len(accepted)
        # `accepted` holds the normalized records: the tree need not normalize them again
        for kind in tree.add_results(accepted, normalized=True):
            counted = _COUNTED_AS.get(kind)
            if counted is not None:
                counts[counted] += 1
        self._pending += len(accepted)
        if self._pending >= self.buffer_size:
            self._request_write()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_interval_s, self._timer_fired)

    def _append(self, data: bytes, results: list[TestResult]) -> None:
        assert self._journal is not None
        self._journal.append(data)
        if self.fsync == "always":
            self._journal.sync()
        if self._on_batch is not None:
            self._on_batch(results)

    def _timer_fired(self) -> None:
        self._timer = None
        self._request_write()

    def _request_write(self) -> None:
        """A database write is due: start it, unless one ran less than the minimum interval ago.

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

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._write_again = False
            self._last_write = loop.time()
            full = self._resync
            snap = self._tree.full_snapshot() if full else self._tree.snapshot()
            self._resync = False
            pending, self._pending = self._pending, 0
            try:
                written = await self._in_thread(self._write_database, snap, full)
            except Exception as exc:
                self._pending += pending  # retried with the next write
                self._counts["db_write_errors"] += 1
                if not isinstance(exc, StorageError):
                    # Not a disk problem: start the next write's document from scratch.
                    self._resync = True
                    exc = StorageError(f"could not write the database: {exc!r}")
                if self._write_error is None or str(self._write_error) != str(exc):
                    # once per distinct failure: a full disk must not flood the console
                    log.error("database_write_failed", error=str(exc))
                self._write_error = exc
            else:
                self._counts["db_writes"] += 1
                self._bytes_written += written
                self._written_once = True
                if self._write_error is not None:
                    log.info("database_write_recovered")
                self._write_error = None
            if not self._write_again:
                return
            wait = self._last_write + self.min_write_interval_s - loop.time()
            if wait > 0 and not self._closing:
                # the next write once the interval has passed (this task is done by then)
                self._write_after(loop, wait)
                return

    def _write_after(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        """Have a write start in `wait` seconds, unless one is already due by then."""
        if self._timer is not None:
            if self._timer.when() <= loop.time() + wait:
                return
            self._timer.cancel()
        self._timer = loop.call_later(wait, self._timer_fired)

    def _write_database(self, snap: Snapshot, full: bool) -> int:
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
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._writer is not None:
                await self._writer
            if self._pending or not self._written_once:
                self._request_write()
                assert self._writer is not None
                await self._writer
        finally:
            self._release_journal()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
        lost = len(self._intake) if self._intake is not None else 0
        log.info("aggregator_closed", **self.counts, unrecorded=lost)
        self._raise_failure()
        if self._write_error is not None:
            raise self._write_error


#: the aggregator's counter of each way `StatsTree.add_result` can count a record
_COUNTED_AS = {
    "infra_error": "infra_errors",
    "request_error": "request_errors",
    "evaluate_error": "evaluate_errors",
    "replaced": "replaced",
}
_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _journal_line(result: TestResult, reported_model: str) -> bytes:
    # default=str: an odd value in `details` must not cost the result.
    if result.model == reported_model:
        return orjson.dumps(result, default=str, option=_DUMP_OPTIONS)
    record = result.to_record()
    record["reported_model"] = reported_model
    return orjson.dumps(record, default=str, option=_DUMP_OPTIONS)


def _existing_database(path: Path) -> dict[str, Any] | None:
    # An unreadable database is rebuilt from the journal; the damaged file is kept aside.
    if not path.exists():
        return None
    try:
        db = read_database(path)
        if schema_of(db) != "unusable":  # e.g. `{}`: nothing in it to keep
            return db
    except DatabaseError:
        pass
    aside = set_aside(path, "corrupt")
    log.warning("database_unreadable_set_aside", path=str(path), moved_to=str(aside))
    return None


def _has_counts(db: dict[str, Any]) -> bool:
    with contextlib.suppress(AttributeError, TypeError):
        stats = db.get("overall_stats") or {}
        return bool(stats.get("total") or stats.get("infra_errors"))
    return False

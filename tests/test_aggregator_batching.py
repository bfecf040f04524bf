"""The aggregator's write path: journal first, batches, interval and final flushes, group commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

import ultra_async.results._db_writer as db_writer_module
import ultra_async.results.aggregator as aggregator_module
from tests.fixtures.factory import stream
from tests.fixtures.waiting import until
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE, read_database

Writer = Callable[..., int]
REAL_WRITE = db_writer_module.atomic_write


def journal_lines(out: Path) -> int:
    return (out / JOURNAL_FILE).read_bytes().count(b"\n")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every database the aggregator writes, parsed; also checks the journal holds what it counts."""
    recorded: list[dict[str, Any]] = []

    def recording(path: Path, chunks: Iterable[bytes], *, durable: bool = True) -> int:
        data = b"".join(chunks)
        doc = orjson.loads(data)
        # The journal must already hold every result this database counts.
        assert doc["overall_stats"]["total"] <= journal_lines(path.parent)
        recorded.append(doc)
        return REAL_WRITE(path, data, durable=durable)

    monkeypatch.setattr(db_writer_module, "atomic_write", recording)
    return recorded


async def test_one_journal_line_per_result_before_the_database_counts_it(
    tmp_path: Path, writes: list[dict[str, Any]]
) -> None:
    results = list(stream())
    async with Aggregator(tmp_path) as agg:
        for r in results:
            await agg.submit(r)
            await asyncio.sleep(0)
    lines = (tmp_path / JOURNAL_FILE).read_bytes().splitlines()
    assert [orjson.loads(line)["item_id"] for line in lines] == [r.item_id for r in results]
    assert writes[-1]["overall_stats"]["total"] == len(results)
    assert agg.counts["journaled"] == len(results) == agg.counts["received"]


async def test_writes_every_buffer_size_results(
    tmp_path: Path, writes: list[dict[str, Any]]
) -> None:
    async with Aggregator(tmp_path, buffer_size=3, flush_interval_s=60, fsync="never") as agg:
        for k, r in enumerate(list(stream())[:9], 1):
            await agg.submit(r)
            await until(lambda k=k: agg.counts["journaled"] == k)  # type: ignore[misc]
            if k % 3:
                await asyncio.sleep(0.01)  # time for a write that should not happen
            await until(lambda k=k: len(writes) == k // 3)  # type: ignore[misc]
    assert [w["overall_stats"]["total"] for w in writes] == [3, 6, 9]


async def test_interval_flush_writes_a_partial_batch(
    tmp_path: Path, writes: list[dict[str, Any]]
) -> None:
    async with Aggregator(tmp_path, buffer_size=100, flush_interval_s=0.02) as agg:
        await agg.submit(next(stream()))
        await until(lambda: len(writes) == 1)
        assert writes[0]["overall_stats"]["total"] == 1
    assert len(writes) == 1  # nothing new since, so no write at exit


async def test_final_flush_on_exit(tmp_path: Path, writes: list[dict[str, Any]]) -> None:
    async with Aggregator(tmp_path, buffer_size=100, flush_interval_s=60) as agg:
        for r in list(stream())[:5]:
            await agg.submit(r)
    assert len(writes) == 1
    assert read_database(tmp_path / DATABASE_FILE)["overall_stats"]["total"] == 5


async def test_final_flush_when_the_body_is_cancelled(tmp_path: Path) -> None:
    submitted = asyncio.Event()

    async def body() -> None:
        async with Aggregator(tmp_path, buffer_size=100, flush_interval_s=60) as agg:
            for r in list(stream())[:5]:
                await agg.submit(r)
            submitted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(body())
    await submitted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read_database(tmp_path / DATABASE_FILE)["overall_stats"]["total"] == 5


async def test_cancelling_the_exit_itself_still_flushes_and_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, gate = threading.Event(), threading.Event()

    def slow(path: Path, chunks: Iterable[bytes], *, durable: bool = True) -> int:
        entered.set()
        gate.wait(5)
        return REAL_WRITE(path, chunks, durable=durable)

    monkeypatch.setattr(db_writer_module, "atomic_write", slow)

    async def body() -> None:
        async with Aggregator(tmp_path, buffer_size=100, flush_interval_s=60) as agg:
            for r in list(stream())[:4]:
                await agg.submit(r)

    task = asyncio.create_task(body())
    await until(entered.is_set)  # the final write is under way
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read_database(tmp_path / DATABASE_FILE)["overall_stats"]["total"] == 4


async def test_group_commit_while_a_write_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    totals: list[int] = []
    gate = threading.Event()

    def blocking(path: Path, chunks: Iterable[bytes], *, durable: bool = True) -> int:
        data = b"".join(chunks)
        totals.append(orjson.loads(data)["overall_stats"]["total"])
        if len(totals) == 1:
            gate.wait(5)
        return REAL_WRITE(path, data, durable=durable)

    monkeypatch.setattr(db_writer_module, "atomic_write", blocking)
    results = list(stream())[:10]
    async with Aggregator(tmp_path, buffer_size=1, flush_interval_s=60) as agg:
        await agg.submit(results[0])
        await until(lambda: len(totals) == 1)
        for r in results[1:]:
            await agg.submit(r)
        # The event loop keeps journaling and counting while the first write is stuck.
        await until(lambda: agg.counts["journaled"] == 10)
        assert len(totals) == 1
        gate.set()
        await until(lambda: agg.counts["db_writes"] == 2)
    assert totals == [1, 10]


async def test_backpressure_when_the_queue_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_sync = aggregator_module.Journal.sync

    def stuck_sync(self: Any) -> None:
        gate.wait(5)
        real_sync(self)

    monkeypatch.setattr(aggregator_module.Journal, "sync", stuck_sync)
    results = list(stream())[:4]
    async with Aggregator(tmp_path, fsync="always", queue_size=2) as agg:
        await agg.submit(results[0])
        await until(lambda: agg.counts["received"] == 1)  # the consumer is stuck in fsync
        await agg.submit(results[1])
        await agg.submit(results[2])
        blocked = asyncio.create_task(agg.submit(results[3]))
        await asyncio.sleep(0.02)
        assert not blocked.done()
        gate.set()
        await blocked
    assert read_database(tmp_path / DATABASE_FILE)["overall_stats"]["total"] == 4


def submit_without_waiting(agg: Aggregator, result: Any) -> None:
    """Run `agg.submit(result)` to its end in one step; fails if it had to wait."""
    coro = agg.submit(result)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise AssertionError("submit waited although the queue had room")


async def test_each_wake_up_takes_everything_queued_in_one_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends: list[int] = []
    real_append = aggregator_module.Journal.append

    def counting(self: Any, data: bytes) -> None:
        appends.append(data.count(b"\n"))
        real_append(self, data)

    monkeypatch.setattr(aggregator_module.Journal, "append", counting)
    results = list(stream(instances=40))[:500]  # far more than any fixed chunk
    async with Aggregator(tmp_path, flush_interval_s=60) as agg:
        for r in results:
            submit_without_waiting(agg, r)
        await until(lambda: agg.counts["journaled"] == len(results))
    assert appends == [len(results)]  # one batch, one thread hand-off
    assert journal_lines(tmp_path) == len(results)


async def test_producers_never_wait_while_an_append_is_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, entered = threading.Event(), threading.Event()
    appends: list[int] = []
    real_append = aggregator_module.Journal.append

    def slow(self: Any, data: bytes) -> None:
        appends.append(data.count(b"\n"))
        entered.set()
        gate.wait(5)
        real_append(self, data)

    monkeypatch.setattr(aggregator_module.Journal, "append", slow)
    results = list(stream(instances=40))[:300]
    async with Aggregator(tmp_path, flush_interval_s=60, queue_size=256) as agg:
        submit_without_waiting(agg, results[0])
        await until(entered.is_set)  # the first append is stuck in its thread
        for r in results[1:257]:
            submit_without_waiting(agg, r)  # up to queue_size wait without blocking anyone
        blocked = asyncio.create_task(agg.submit(results[257]))
        await asyncio.sleep(0.01)
        assert not blocked.done()  # backpressure only beyond queue_size
        gate.set()
        await blocked
        for r in results[258:]:
            await agg.submit(r)
        await until(lambda: agg.counts["journaled"] == len(results))
    assert appends[:2] == [1, 256]  # what queued during the stuck append went in one batch
    assert journal_lines(tmp_path) == len(results)

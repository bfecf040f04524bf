"""Failures, duplicates and resume: nothing journaled is lost, nothing is counted twice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.factory import completed, infra, items, stream
from tests.fixtures.waiting import until
from ultra_async.errors import DatabaseError, StorageError
from ultra_async.results import db
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    Journal,
    done_ids,
    fresh_start,
    read_database,
)
from ultra_async.types import TestResult


async def run(out: Path, results: list[TestResult], **options: Any) -> Aggregator:
    async with Aggregator(out, **options) as agg:
        for r in results:
            await agg.submit(r)
            await asyncio.sleep(0)
    return agg


def database(out: Path) -> dict[str, Any]:
    return read_database(out / DATABASE_FILE)


def append_bytes(path: Path, data: bytes) -> None:
    """Append raw bytes, as a crash in the middle of an append leaves them."""
    with open(path, "ab") as f:
        f.write(data)


def matching(out: Path, pattern: str) -> list[Path]:
    return list(out.glob(pattern))


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


async def test_failing_database_write_raises_storage_error_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(DATABASE_FILE):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    results = list(stream())[:7]
    with pytest.raises(StorageError, match=r"No space left on device.*db rebuild"):
        await run(tmp_path, results)
    assert temp_files(tmp_path) == []
    assert not (tmp_path / DATABASE_FILE).exists()
    assert (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 7
    monkeypatch.setattr(os, "replace", real_replace)
    db.rebuild(tmp_path)
    assert database(tmp_path)["overall_stats"]["total"] == 7


async def test_a_transient_write_failure_is_retried_by_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace
    failures = [OSError(5, "I/O error")]

    def flaky_replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(DATABASE_FILE) and failures:
            raise failures.pop()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    agg = await run(tmp_path, list(stream())[:6], buffer_size=3)
    assert agg.counts["db_write_errors"] == 1
    assert database(tmp_path)["overall_stats"]["total"] == 6
    assert temp_files(tmp_path) == []


async def test_failing_journal_append_stops_intake_and_counts_only_what_was_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = Journal.append
    calls = []

    def append(self: Journal, data: bytes) -> None:
        calls.append(data)
        if len(calls) == 3:
            raise StorageError("could not append: disk full")
        real_append(self, data)

    monkeypatch.setattr(Journal, "append", append)
    results = list(stream())[:6]
    with pytest.raises(StorageError, match="disk full"):
        async with Aggregator(tmp_path) as agg:
            for k, result in enumerate(results, 1):
                await agg.submit(result)  # raises once the aggregator has failed
                await until(lambda k=k: len(calls) >= k)  # type: ignore[misc]
    assert len(calls) == 3
    assert (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 2
    assert database(tmp_path)["overall_stats"]["total"] == 2
    assert done_ids(tmp_path) == {r.item_id for r in results[:2]}


async def test_duplicates_are_not_counted_twice(tmp_path: Path) -> None:
    results = list(stream())[:5]
    again = completed(items()[0], seed=99)
    agg = await run(tmp_path, [*results, again, results[1]])
    assert agg.counts["duplicates"] == 2
    assert (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 5
    assert database(tmp_path)["overall_stats"]["total"] == 5


async def test_resume_in_parts_equals_one_uninterrupted_run(tmp_path: Path) -> None:
    results = list(stream())
    await run(tmp_path / "once", results)
    parts = tmp_path / "parts"
    await run(parts, results[:30])
    assert done_ids(parts) == {r.item_id for r in results[:30]}
    async with Aggregator(parts) as agg:
        assert agg.done_ids == {r.item_id for r in results[:30]}
        for r in results:  # a rerun offers everything; the done ones are skipped
            if r.item_id not in agg.done_ids:
                await agg.submit(r)
    once, resumed = database(tmp_path / "once"), database(parts)
    for doc in (once, resumed):
        doc.pop("created_at")
        doc.pop("last_updated")
    assert once == resumed


async def test_infra_errors_are_retried_and_drop_out_when_they_succeed(tmp_path: Path) -> None:
    results = list(stream())
    failing = {r.item_id for r in results[:10]}
    first = [infra(item) for item in items()[:10]] + results[10:]
    agg = await run(tmp_path / "a", first)
    assert agg.counts["infra_errors"] == 10
    assert database(tmp_path / "a")["overall_stats"]["infra_errors"] == 10
    assert database(tmp_path / "a")["summary"]["items"] == len(results)
    assert failing.isdisjoint(done_ids(tmp_path / "a"))
    await run(tmp_path / "a", [r for r in results if r.item_id in failing])
    await run(tmp_path / "b", results)
    assert db.comparable(database(tmp_path / "a")) == db.comparable(database(tmp_path / "b"))
    assert database(tmp_path / "a")["overall_stats"]["infra_errors"] == 0


async def test_rebuild_from_the_journal_equals_the_live_database(tmp_path: Path) -> None:
    results = list(stream()) + [infra(item) for item in items(4)[-6:]]
    await run(tmp_path, results, buffer_size=5)
    live = database(tmp_path)
    assert db.check_invariants(live) == []
    assert db.rebuild(tmp_path).code == db.EXIT_OK
    rebuilt = database(tmp_path)
    assert rebuilt["created_at"] == live["created_at"]
    live.pop("last_updated")
    rebuilt.pop("last_updated")
    assert rebuilt == live


async def test_torn_journal_tail_is_dropped_on_resume(tmp_path: Path) -> None:
    results = list(stream())
    await run(tmp_path, results[:5])
    append_bytes(tmp_path / JOURNAL_FILE, orjson.dumps(results[5].to_record())[:40])
    await run(tmp_path, results[5:8])
    assert db.check(tmp_path).code == db.EXIT_OK
    assert database(tmp_path)["overall_stats"]["total"] == 8


async def test_stale_temp_files_from_a_crash_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / f".{DATABASE_FILE}.12345.abcd.tmp"
    stale.write_bytes(b"{half a datab")
    await run(tmp_path, list(stream())[:2])
    assert temp_files(tmp_path) == []


async def test_an_old_database_is_never_overwritten(tmp_path: Path) -> None:
    old = tmp_path / DATABASE_FILE
    old.write_text('{"version": "3.0", "models": {}}')
    with pytest.raises(DatabaseError, match="db migrate"):
        await run(tmp_path, list(stream())[:2])
    assert old.read_text() == '{"version": "3.0", "models": {}}'
    backup = fresh_start(tmp_path)
    assert backup is not None and (backup / DATABASE_FILE).exists()
    await run(tmp_path, list(stream())[:2])
    assert database(tmp_path)["overall_stats"]["total"] == 2


async def test_a_database_without_its_journal_is_not_overwritten(tmp_path: Path) -> None:
    await run(tmp_path, list(stream())[:3])
    os.remove(tmp_path / JOURNAL_FILE)
    with pytest.raises(DatabaseError, match=r"results\.jsonl"):
        await run(tmp_path, list(stream())[3:5])
    assert database(tmp_path)["overall_stats"]["total"] == 3


async def test_a_corrupt_database_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    await run(tmp_path, list(stream())[:3])
    os.truncate(tmp_path / DATABASE_FILE, 40)
    await run(tmp_path, list(stream())[3:4])
    assert database(tmp_path)["overall_stats"]["total"] == 4
    assert len(matching(tmp_path, f"{DATABASE_FILE}.corrupt-*")) == 1


async def test_two_aggregators_cannot_share_an_output_directory(tmp_path: Path) -> None:
    async with Aggregator(tmp_path):
        with pytest.raises(StorageError, match="another process"):
            async with Aggregator(tmp_path):
                pass
        with pytest.raises(StorageError, match="another process"):
            fresh_start(tmp_path)


async def test_a_result_that_cannot_be_counted_is_never_journaled(tmp_path: Path) -> None:
    good = list(stream())[:3]
    bad = dataclasses.replace(good[0], item_id="x/y", labels={"prompt_type": "optimal"})
    agg = await run(tmp_path, [good[0], bad, *good[1:]])
    assert agg.counts["invalid"] == 1
    assert (tmp_path / JOURNAL_FILE).read_bytes().count(b"\n") == 3
    assert db.rebuild(tmp_path).info["total"] == 3

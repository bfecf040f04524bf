"""db check / rebuild / repair / migrate as library calls."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.factory import completed, infra, items, stream
from ultra_async.errors import DatabaseError
from ultra_async.results import db
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.migrate import migrate
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE, done_ids, read_database
from ultra_async.types import WorkItem

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output directory after a run: 72 completed tests and 4 open infra errors."""

    async def fill() -> None:
        async with Aggregator(tmp_path) as agg:
            for result in [*stream(), *(infra(item) for item in extra_items()[:4])]:
                await agg.submit(result)

    asyncio.run(fill())
    return tmp_path


def extra_items() -> list[WorkItem]:
    """Items beyond the three instances `stream()` completes."""
    return [item for item in items(6) if item.instance >= 3]


def database(out: Path) -> dict[str, Any]:
    return read_database(out / DATABASE_FILE)


def without_last_update(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "last_updated"}


def test_check_passes_on_a_sound_directory(out: Path) -> None:
    report = db.check(out)
    assert report.code == db.EXIT_OK, report.problems
    assert report.info == {"journal_records": 76, "total": 72}


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), db.EXIT_UNREADABLE),
        (lambda p: p.write_bytes(b"\x00garbage" + p.read_bytes()[8:]), db.EXIT_UNREADABLE),
        (lambda p: p.unlink(), db.EXIT_UNREADABLE),
        (lambda p: p.write_bytes(b'{"version": "3.0", "models": {}}'), db.EXIT_SCHEMA),
    ],
    ids=["truncated", "garbled", "missing", "old-schema"],
)
def test_check_reports_a_damaged_database(out: Path, damage: Any, code: int) -> None:
    damage(out / DATABASE_FILE)
    assert db.check(out).code == code


def test_check_reports_missing_fields_broken_invariants_and_disagreement(out: Path) -> None:
    good = database(out)
    broken = orjson.loads(orjson.dumps(good))
    del broken["models"]["gpt-4o-mini"]["overall_stats"]["avg_turns"]
    (out / DATABASE_FILE).write_bytes(orjson.dumps(broken))
    assert db.check(out).code == db.EXIT_SCHEMA

    broken = orjson.loads(orjson.dumps(good))
    broken["models"]["gpt-4o-mini"]["by_prompt_type"]["optimal"]["overall_stats"]["failure"] += 1
    (out / DATABASE_FILE).write_bytes(orjson.dumps(broken))
    assert db.check(out).code == db.EXIT_INVARIANTS

    (out / DATABASE_FILE).write_bytes(orjson.dumps(good))
    with open(out / JOURNAL_FILE, "ab") as f:
        f.write(orjson.dumps(completed(extra_items()[-1]).to_record()) + b"\n")
    report = db.check(out)
    assert report.code == db.EXIT_MISMATCH
    assert any("disagrees with the journal" in p for p in report.problems)


def test_check_reports_a_torn_journal(out: Path) -> None:
    with open(out / JOURNAL_FILE, "ab") as f:
        f.write(b'{"item_id": "gpt-4o-mini/opt')
    report = db.check(out)
    assert report.code == db.EXIT_JOURNAL
    assert "torn" in report.problems[0]


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_repair_restores_a_damaged_database_exactly(out: Path, damage: str) -> None:
    original = database(out)
    path = out / DATABASE_FILE
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garble":
        path.write_bytes(data[:500] + b"#@!" * 50 + data[650:])
    else:
        path.write_bytes(b"")
    report = db.repair(out)
    assert any("corrupt" in a for a in report.actions)
    repaired = database(out)
    assert db.comparable(repaired) == db.comparable(original)
    # Everything but the two timestamps is restored, execution times included.
    strip = ("created_at", "last_updated")
    assert {k: v for k, v in repaired.items() if k not in strip} == {
        k: v for k, v in original.items() if k not in strip
    }
    assert db.check(out).code == db.EXIT_OK
    assert len(list(out.glob(f"{DATABASE_FILE}.corrupt-*"))) == 1


def test_repair_drops_a_torn_and_a_garbled_journal_line_and_keeps_a_backup(out: Path) -> None:
    original = database(out)
    journal = out / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[3] = b'{"item_id": "broken\n'
    journal.write_bytes(b"".join(lines) + b'{"item_id": "torn')
    report = db.repair(out)
    text = "\n".join(report.actions)
    assert "torn" in text and "unreadable journal line(s): 4" in text
    assert len(list(out.glob(f"{JOURNAL_FILE}.damaged-*"))) == 1
    assert db.check(out).code == db.EXIT_OK
    # The record on line 4 is gone, so its item is no longer done and will be rerun.
    assert database(out)["overall_stats"]["total"] == original["overall_stats"]["total"] - 1
    assert len(done_ids(out)) == 71


def test_repair_leaves_a_sound_directory_alone(out: Path) -> None:
    before = (out / DATABASE_FILE).read_bytes()
    report = db.repair(out)
    assert report.actions == ["the database already agrees with the journal"]
    assert (out / DATABASE_FILE).read_bytes() == before


def test_rebuild_needs_a_journal_and_refuses_to_replace_an_old_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="nothing to rebuild"):
        db.rebuild(tmp_path)
    shutil.copy(FIXTURES / "master_database_v3.json", tmp_path / DATABASE_FILE)
    (tmp_path / JOURNAL_FILE).write_bytes(b"")
    with pytest.raises(DatabaseError, match="db migrate"):
        db.rebuild(tmp_path)


def test_migrate_a_schema_3_database(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "master_database_v3.json", tmp_path / DATABASE_FILE)
    report = migrate(tmp_path)
    new = database(tmp_path)
    assert new["version"] == "4.0" and new["created_at"] == "2025-08-14T09:12:44.118203"
    assert db.check_invariants(new) == []
    assert db.check(tmp_path).code == db.EXIT_OK
    # The instance name folds into the real model and "0.80" into the rate key "0.8".
    assert list(new["models"]) == ["DeepSeek-V3-0324"]
    cell = new["models"]["DeepSeek-V3-0324"]["by_prompt_type"]["optimal"]
    tasks = cell["by_tool_success_rate"]["0.8"]["by_difficulty"]["easy"]["by_task_type"]
    simple, pipeline = tasks["simple_task"], tasks["data_pipeline"]
    assert (simple["total"], simple["full_success"], simple["partial_success"]) == (20, 14, 2)
    assert (simple["failure"], simple["success"], simple["timeout_errors"]) == (4, 16, 2)
    assert simple["avg_workflow_score"] == pytest.approx(0.855)
    assert (pipeline["total"], pipeline["success"], pipeline["failure"]) == (10, 4, 6)
    assert new["overall_stats"]["total"] == 30
    assert new["imports"][0]["from_version"] == "3.0" and new["imports"][0]["leaves"] == 3
    lost = "\n".join(report.info["not_recovered"])
    assert "avg_phase2_score" in lost and "avg_final_score" in lost
    assert "absent in 3 of 3 leaves" in lost
    assert len(list(tmp_path.glob(f"{DATABASE_FILE}.v3.0-*"))) == 1


async def test_runs_after_a_migration_add_to_the_imported_counts(tmp_path: Path) -> None:
    migrate(tmp_path, FIXTURES / "master_database_v3.json")
    async with Aggregator(tmp_path) as agg:
        for result in list(stream())[:5]:
            await agg.submit(result)
    assert database(tmp_path)["overall_stats"]["total"] == 35
    assert db.check(tmp_path).code == db.EXIT_OK
    with pytest.raises(DatabaseError, match="already holds imported"):
        migrate(tmp_path, FIXTURES / "master_database_v3.json")


def test_migrate_recovers_a_4_0_database_whose_journal_is_lost(out: Path) -> None:
    original = database(out)
    (out / JOURNAL_FILE).unlink()
    report = migrate(out)
    assert report.info["not_recovered"] == []
    migrated = database(out)
    assert migrated["overall_stats"] == original["overall_stats"]
    assert migrated["models"] == original["models"]
    assert db.check(out).code == db.EXIT_OK

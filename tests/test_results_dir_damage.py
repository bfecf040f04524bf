"""A results directory whose database or journal is a directory, or whose database is `{}`:
`db check` says what to run, following that advice works, `db repair` sets aside what it cannot
use, and a run's start-up does the same without a traceback.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.fixtures.factory import stream
from ultra_async.cli.main import main
from ultra_async.errors import StorageError
from ultra_async.exitcodes import EXIT_JOURNAL, EXIT_OK, EXIT_UNREADABLE
from ultra_async.results import db
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE, read_database


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A results directory after a run of 72 tests."""
    directory = tmp_path / "out"

    async def fill() -> None:
        async with Aggregator(directory) as agg:
            for result in stream():
                await agg.submit(result)

    asyncio.run(fill())
    return directory


def database_is_a_directory(out: Path) -> None:
    (out / DATABASE_FILE).unlink()
    (out / DATABASE_FILE / "inside").mkdir(parents=True)


def database_is_empty_object(out: Path) -> None:
    (out / DATABASE_FILE).write_bytes(b"{}")


def database_is_unknown_schema(out: Path) -> None:
    (out / DATABASE_FILE).write_bytes(b'{"version": "9.9", "models": {}}')


DAMAGE = [database_is_a_directory, database_is_empty_object, database_is_unknown_schema]


def run_db(action: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["db", action, "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out + captured.err


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_check_advice_for_an_unusable_database_works(
    damage: Callable[[Path], None], out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = orjson.loads((out / DATABASE_FILE).read_bytes())
    damage(out)
    code, text = run_db("check", out, capsys)
    assert code == EXIT_UNREADABLE, text
    assert "run `db repair`" in text
    code, text = run_db("repair", out, capsys)
    assert code == EXIT_OK, text
    assert "moved the" in text
    code, text = run_db("check", out, capsys)
    assert code == EXIT_OK, text
    assert db.comparable(read_database(out / DATABASE_FILE)) == db.comparable(expected)
    # nothing was deleted: the unusable database is kept beside the new one
    assert len(list(out.glob(f"{DATABASE_FILE}.corrupt-*"))) == 1


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
async def test_a_run_sets_an_unusable_database_aside_and_rebuilds(
    damage: Callable[[Path], None], out: Path
) -> None:
    damage(out)
    more = [r for r in stream(instances=4) if r.instance == 3]
    async with Aggregator(out) as agg:
        assert len(agg.done_ids) == 72
        for result in more:
            await agg.submit(result)
    assert db.check(out).code == EXIT_OK
    assert read_database(out / DATABASE_FILE)["overall_stats"]["total"] == 72 + len(more) == 96
    assert len(glob_sync(out, f"{DATABASE_FILE}.corrupt-*")) == 1


def glob_sync(directory: Path, pattern: str) -> list[Path]:
    return list(directory.glob(pattern))


def test_a_journal_that_is_a_directory(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = db.comparable(read_database(out / DATABASE_FILE))
    shutil.move(out / JOURNAL_FILE, out.parent / "journal-elsewhere")
    (out / JOURNAL_FILE).mkdir()
    code, text = run_db("check", out, capsys)
    assert code == EXIT_JOURNAL, text
    assert "is a directory, not the journal" in text and "db repair" in text
    with pytest.raises(StorageError, match="is a directory, not the journal"):
        asyncio.run(Aggregator(out).__aenter__())
    code, text = run_db("repair", out, capsys)
    assert code == EXIT_OK, text
    # the database's statistics were imported into a new journal
    code, text = run_db("check", out, capsys)
    assert code == EXIT_OK, text
    assert (
        db.comparable(read_database(out / DATABASE_FILE))["overall_stats"]
        == (expected["overall_stats"])
    )
    assert len(list(out.glob(f"{JOURNAL_FILE}.not-a-file-*"))) == 1


def test_a_missing_journal_is_advised_to_repair(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (out / JOURNAL_FILE).unlink()
    code, text = run_db("check", out, capsys)
    assert code == EXIT_JOURNAL and "run `db repair`" in text, text
    code, text = run_db("repair", out, capsys)
    assert code == EXIT_OK, text
    code, text = run_db("check", out, capsys)
    assert code == EXIT_OK, text


def test_repair_with_nothing_to_rebuild_from(tmp_path: Path) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(b"{}")
    report = db.repair(tmp_path)
    assert any("nothing to rebuild" in line for line in report.actions)
    assert not (tmp_path / DATABASE_FILE).exists()

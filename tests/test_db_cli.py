"""The `db` command line: argument wiring, output and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import shutil
from pathlib import Path

import orjson
import pytest

from tests.fixtures.factory import stream
from ultra_async.cli.db import add_db_arguments, run_db
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE

FIXTURES = Path(__file__).parent / "fixtures"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ultra_async")
    commands = top.add_subparsers(dest="command", required=True)
    add_db_arguments(commands.add_parser("db"))
    return top


def db(*argv: str) -> int:
    return run_db(parser().parse_args(["db", *argv]))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with Aggregator(tmp_path) as agg:
            for result in stream():
                await agg.submit(result)

    asyncio.run(fill())
    return tmp_path


def test_every_action_takes_out_with_a_default() -> None:
    for action in ("check", "rebuild", "repair", "migrate", "export"):
        args = parser().parse_args(["db", action])
        assert args.db_action == action and args.out == Path("results")
    args = parser().parse_args(["db", "migrate", "--out", "x", "--from", "old.json"])
    assert (args.out, args.source) == (Path("x"), Path("old.json"))


def test_check_ok_then_damaged_then_repaired(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert db("check", "--out", str(out)) == 0
    assert "ok:" in capsys.readouterr().out
    path = out / DATABASE_FILE
    path.write_bytes(path.read_bytes()[:100])
    assert db("check", "--out", str(out)) == 3
    assert "run `db repair`" in capsys.readouterr().out
    assert db("repair", "--out", str(out)) == 0
    assert "corrupt" in capsys.readouterr().out
    assert db("check", "--out", str(out)) == 0


def test_check_exit_code_for_a_torn_journal(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(out / JOURNAL_FILE, "ab") as f:
        f.write(b'{"item_id": ')
    assert db("check", "--out", str(out)) == 7
    assert "exit code 7" in capsys.readouterr().out


def test_failures_print_an_error_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert db("rebuild", "--out", str(tmp_path)) == 1
    assert "nothing to rebuild" in capsys.readouterr().err


def test_migrate_prints_what_it_could_not_recover(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.json"
    shutil.copy(FIXTURES / "master_database_v3.json", old)
    assert db("migrate", "--out", str(tmp_path / "new"), "--from", str(old)) == 0
    printed = capsys.readouterr().out
    assert "imported 3 leaves" in printed
    assert "not recovered: " in printed and "avg_final_score" in printed
    assert db("check", "--out", str(tmp_path / "new")) == 0


@pytest.mark.parametrize("text", [b"{}", b'{"version": "3.0", "models": {}}'])
def test_migrating_a_database_without_leaves_changes_nothing(
    text: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(text)
    assert db("migrate", "--out", str(tmp_path)) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "holds no statistics to import" in lines[0], captured
    assert [p.name for p in tmp_path.iterdir()] == [DATABASE_FILE]
    assert (tmp_path / DATABASE_FILE).read_bytes() == text


def test_export_csv_and_jsonl(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert db("export", "--out", str(out), "--format", "csv") == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 24 and "exported 24 leaves" in captured.err
    assert rows[0]["model"] == "DeepSeek-V3-0324" and int(rows[0]["total"]) == 3
    target = out / "leaves.jsonl"
    assert db("export", "--out", str(out), "--format", "jsonl", "--output", str(target)) == 0
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert len(lines) == 24 and sum(line["total"] for line in lines) == 72

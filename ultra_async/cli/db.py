"""The `db` command: check, rebuild, repair, migrate and export the master database.

Exit codes: `check` returns the codes of `ultra_async.exitcodes` (0 consistent, 3 database
unreadable, 4 schema, 5 invariants, 6 disagrees with the journal, 7 journal damaged); the
other actions return 0 on success and 1 when they could not do their job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from ..errors import UltraAsyncError
from ..exitcodes import (
    EXIT_FAILED,
    EXIT_INVARIANTS,
    EXIT_JOURNAL,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_SCHEMA,
    EXIT_UNREADABLE,
)
from ..results import db
from ..results.export import write_csv, write_jsonl
from ..results.migrate import migrate
from ..results.storage import DATABASE_FILE, read_database

_ACTIONS = {
    "check": "validate the database: JSON, schema, invariants, agreement with the journal",
    "rebuild": "write the database from the journal",
    "repair": "drop damaged journal lines (kept in a backup) and rebuild a damaged database",
    "migrate": "import a database written by the older tool (schema 3.0)",
    "export": "write one row per leaf as CSV or JSON lines",
}


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `db` actions (check/rebuild/repair/migrate/export) to `parser`."""
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    for name, help_text in _ACTIONS.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--out",
            metavar="DIR",
            type=Path,
            default=Path("results"),
            help="output directory holding master_database.json and results.jsonl "
            "(default: results)",
        )
        if name == "migrate":
            sub.add_argument(
                "--from",
                dest="source",
                metavar="PATH",
                type=Path,
                default=None,
                help="the old database (default: DIR/master_database.json, kept under a new name)",
            )
        if name == "export":
            sub.add_argument("--format", choices=("csv", "jsonl"), default="csv")
            sub.add_argument(
                "--output", metavar="PATH", default="-", help="file to write (default: stdout)"
            )


def run_db(args: argparse.Namespace) -> int:
    """Run the `db` action in `args`; returns the exit code."""
    try:
        if args.db_action == "export":
            return _export(args)
        report = {
            "check": lambda: db.check(args.out),
            "rebuild": lambda: db.rebuild(args.out),
            "repair": lambda: db.repair(args.out),
            "migrate": lambda: migrate(args.out, args.source),
        }[args.db_action]()
    except UltraAsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print(args.db_action, args.out, report, sys.stdout)
    return report.code if args.db_action == "check" else EXIT_OK


def _print(action: str, out: Path, report: db.Report, stream: TextIO) -> None:
    for action_taken in report.actions:
        print(action_taken, file=stream)
    for problem in report.problems:
        print(f"{'problem' if action == 'check' else 'note'}: {problem}", file=stream)
    for line in report.info.get("not_recovered", []):
        print(f"not recovered: {line}", file=stream)
    if action == "check" and report.code == EXIT_OK:
        records, total = report.info.get("journal_records", 0), report.info.get("total", 0)
        print(f"ok: {out / DATABASE_FILE} agrees with its journal", file=stream)
        print(f"{records} journal records, {total} tests", file=stream)
    elif action == "check":
        print(f"exit code {report.code}: {_CODES[report.code]}", file=stream)
    if action == "check":
        _print_cache(out, stream)


def _print_cache(out: Path, stream: TextIO) -> None:
    """The `cache` section of `db check`: size, entries and hit rate."""
    from ..results.cache_admin import NO_CACHE, cache_report

    try:
        cache = cache_report(out)
    except (UltraAsyncError, OSError) as exc:
        print(f"cache: unreadable: {exc}", file=stream)
        return
    for line in cache.lines() if cache is not None else [NO_CACHE]:
        print(line, file=stream)


_CODES = {
    EXIT_UNREADABLE: "database missing or not valid JSON; run `db repair`",
    EXIT_SCHEMA: "database has the wrong schema; run `db migrate` (3.0) or `db rebuild`",
    EXIT_INVARIANTS: "statistics are inconsistent; run `db rebuild`",
    EXIT_MISMATCH: "database disagrees with the journal; run `db rebuild`",
    EXIT_JOURNAL: "journal is damaged; run `db repair`",
}


def _export(args: argparse.Namespace) -> int:
    document = read_database(Path(args.out) / DATABASE_FILE)
    write = write_csv if args.format == "csv" else write_jsonl
    if args.output == "-":
        rows = write(document, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as stream:
            rows = write(document, stream)
    print(f"exported {rows} leaves", file=sys.stderr)
    return EXIT_OK

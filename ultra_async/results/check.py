"""`db check`: what a db operation reports, the database the journal implies, and the check.

Exit codes of `check`, lowest problem wins: 0 consistent; 3 database missing or not valid JSON;
4 wrong schema version or missing fields; 5 statistics invariants broken; 6 database disagrees
with the journal; 7 journal damaged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import DatabaseError
from ..exitcodes import (
    EXIT_INVARIANTS,
    EXIT_JOURNAL,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_SCHEMA,
    EXIT_UNREADABLE,
)
from ..naming import ModelNames
from .export import DatabaseDocument
from .invariants import _differences, check_invariants
from .replay import replay
from .stats import StatsTree
from .storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    JournalScan,
    read_database,
    schema_of,
    timestamp,
)


def load_tree(out_dir: Path, names: ModelNames | None = None) -> tuple[StatsTree, JournalScan]:
    """The statistics the journal in `out_dir` implies, and what reading it found."""
    scan = JournalScan()
    return replay(Path(out_dir) / JOURNAL_FILE, scan, names=names), scan


def render(tree: StatsTree, created_at: str) -> list[bytes]:
    """The database document of a tree, as chunks of bytes."""
    document = DatabaseDocument(created_at, tree.layout)
    document.update(tree.full_snapshot())
    return document.chunks(timestamp())


@dataclass(slots=True)
class Report:
    """What a db operation found and did; `code` is the exit status."""

    code: int = EXIT_OK
    problems: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def problem(self, code: int, message: str) -> None:
        """Record a problem; the lowest code wins."""
        self.code = code if self.code == EXIT_OK else min(self.code, code)
        self.problems.append(message)


def check(out_dir: Path) -> Report:
    """Validate the database: JSON, schema, invariants, and agreement with the journal."""
    out_dir = Path(out_dir)
    report = Report()
    try:
        tree, scan = load_tree(out_dir)
    except DatabaseError as exc:  # the journal is a directory
        report.problem(EXIT_JOURNAL, str(exc))
        return report
    _journal_problems(report, out_dir, scan)
    db_path = out_dir / DATABASE_FILE
    try:
        db = read_database(db_path)
    except DatabaseError as exc:
        report.problem(EXIT_UNREADABLE, str(exc))
        return report
    if schema_of(db) == "unusable":
        report.problem(
            EXIT_UNREADABLE,
            f"{db_path} is not a database of any known schema (version {db.get('version')!r}); "
            "run `db repair` to set it aside and rebuild it from the journal",
        )
        return report
    if report.info.get("journal") == "missing" and _has_counts(db):
        report.problem(
            EXIT_JOURNAL,
            f"{out_dir / JOURNAL_FILE} is missing, so the database cannot be checked or "
            "rebuilt; run `db repair` to import its statistics into a new journal",
        )
        return report
    for code, message in check_invariants(db):
        report.problem(code, message)
    if report.code in (EXIT_SCHEMA, EXIT_INVARIANTS):
        return report
    expected = orjson.loads(b"".join(render(tree, "")))
    differences = _differences(db, expected)
    for where in differences[:5]:
        report.problem(EXIT_MISMATCH, f"{where} disagrees with the journal; run `db rebuild`")
    if len(differences) > 5:
        report.problems.append(f"... and {len(differences) - 5} more differences")
    report.info.update(journal_records=scan.records, total=expected["overall_stats"]["total"])
    return report


def _journal_problems(report: Report, out_dir: Path, scan: JournalScan) -> None:
    journal = out_dir / JOURNAL_FILE
    if not journal.exists():
        report.info["journal"] = "missing"
    if scan.torn_tail_bytes:
        report.problem(
            EXIT_JOURNAL,
            f"{journal} ends with a torn line ({scan.torn_tail_bytes} bytes, from a crash); "
            "it was never counted; `db repair` removes it",
        )
    for lineno, reason in scan.bad_lines[:5]:
        report.problem(EXIT_JOURNAL, f"{journal} line {lineno} is {reason}; run `db repair`")


def _has_counts(db: Mapping[str, Any]) -> bool:
    stats = db.get("overall_stats")
    return isinstance(stats, Mapping) and bool(stats.get("total") or stats.get("infra_errors"))

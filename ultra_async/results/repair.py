"""`db rebuild` and `db repair`: write the database from the journal; fix what `check` finds."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import DatabaseError
from ..exitcodes import EXIT_INVARIANTS, EXIT_OK, EXIT_SCHEMA
from ..naming import ModelNames
from .check import Report, _has_counts, check, load_tree, render
from .stats import SCHEMA_VERSION, TOTAL, StatsTree
from .storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    JournalScan,
    atomic_write,
    ensure_unlocked,
    iter_journal_lines,
    raise_if_damaged,
    read_database,
    schema_of,
    set_aside,
    timestamp,
)


def rebuild(out_dir: Path, *, names: ModelNames | None = None) -> Report:
    """Write the database from the journal (the database is a pure function of it)."""
    out_dir = Path(out_dir)
    journal, db_path = out_dir / JOURNAL_FILE, out_dir / DATABASE_FILE
    if not journal.exists():
        raise DatabaseError(f"{journal} does not exist, so there is nothing to rebuild from")
    ensure_unlocked(journal)
    report = Report()
    created_at = _created_at(db_path, report)
    tree, scan = load_tree(out_dir, names)
    raise_if_damaged(journal, scan)
    if scan.torn_tail_bytes:
        report.actions.append(f"ignored a torn last journal line ({scan.torn_tail_bytes} bytes)")
    written = atomic_write(db_path, render(tree, created_at))
    root = tree.nodes[()]
    report.actions.append(f"wrote {db_path} ({written} bytes) from {scan.records} journal records")
    report.info.update(journal_records=scan.records, total=root[TOTAL], leaves=_leaves(tree))
    return report


def _leaves(tree: StatsTree) -> int:
    return sum(1 for p in tree.nodes if len(p) == tree.layout.depth)


def _created_at(db_path: Path, report: Report) -> str:
    # Keep the creation time of a readable database; set a damaged one aside, never delete it.
    if not db_path.exists():
        return timestamp()
    try:
        db = read_database(db_path)
    except DatabaseError:
        aside = set_aside(db_path, "corrupt")
        report.actions.append(f"moved the unreadable database to {aside}")
        return timestamp()
    if schema_of(db) == "unusable":
        aside = set_aside(db_path, "corrupt")
        report.actions.append(f"moved the database of no known schema to {aside}")
        return timestamp()
    if db.get("version") != SCHEMA_VERSION:
        raise DatabaseError(
            f"{db_path} has schema {db.get('version')!r}; run `python -m ultra_async db migrate "
            f"--out {db_path.parent}` first so its statistics are not lost"
        )
    return str(db.get("created_at") or timestamp())


def repair(out_dir: Path) -> Report:
    """Fix what `check` finds: drop damaged journal lines (after a backup), rebuild the database."""
    out_dir = Path(out_dir)
    journal, db_path = out_dir / JOURNAL_FILE, out_dir / DATABASE_FILE
    ensure_unlocked(journal)
    report = Report()
    if journal.is_dir():
        report.actions.append(
            f"moved {journal}, a directory, to {set_aside(journal, 'not-a-file')}"
        )
    if not journal.exists():
        return _without_journal(out_dir, report)
    scan = JournalScan()
    good = [line for line, _ in iter_journal_lines(journal, scan)]
    if scan.torn_tail_bytes or scan.bad_lines:
        backup = journal.with_name(f"{journal.name}.damaged-{timestamp().replace(':', '')}")
        shutil.copyfile(journal, backup)
        atomic_write(journal, good)
        if scan.torn_tail_bytes:
            report.actions.append(
                f"removed a torn last journal line ({scan.torn_tail_bytes} bytes)"
            )
        if scan.bad_lines:
            lines = ", ".join(str(n) for n, _ in scan.bad_lines[:10])
            report.actions.append(
                f"removed {len(scan.bad_lines)} unreadable journal line(s): {lines}"
            )
        report.actions.append(f"kept the original journal as {backup}")
    found = check(out_dir)
    if found.code == EXIT_OK:
        report.actions.append("the database already agrees with the journal")
        return report
    report.problems += found.problems
    if found.code in (EXIT_SCHEMA, EXIT_INVARIANTS) and db_path.exists():
        version = read_database(db_path).get("version")
        if version == SCHEMA_VERSION:
            report.actions.append(f"moved the damaged database to {set_aside(db_path, 'corrupt')}")
    rebuilt = rebuild(out_dir)
    report.actions += rebuilt.actions
    report.info.update(rebuilt.info)
    return report


def _without_journal(out_dir: Path, report: Report) -> Report:
    """Repair with no journal: import a database's statistics into a new one, or start clean."""
    db_path = out_dir / DATABASE_FILE
    try:
        db = read_database(db_path) if db_path.exists() else None
    except DatabaseError:
        db = None
    if db is not None and schema_of(db) != "unusable" and _has_counts(db):
        from .migrate import migrate  # only here: it loads the workflow suite

        imported = migrate(out_dir)
        report.actions += imported.actions
        report.problems += imported.problems
        report.info.update(imported.info)
        return report
    if db_path.exists() and (db is None or schema_of(db) == "unusable"):
        report.actions.append(f"moved the unusable database to {set_aside(db_path, 'corrupt')}")
    report.actions.append(
        f"{out_dir / JOURNAL_FILE} does not exist and no database holds results: "
        "nothing to rebuild; the next run starts afresh"
    )
    return report

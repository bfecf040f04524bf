"""Opening a results directory for a run: its lock, the journal's statistics, the database kept."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from ..errors import DatabaseError, StorageError
from ..naming import ModelNames
from .export import DatabaseDocument
from .layout import Layout
from .replay import header_line, replay
from .stats import SCHEMA_VERSION, StatsTree
from .storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    Journal,
    JournalScan,
    raise_if_damaged,
    read_database,
    remove_stale_temp_files,
    schema_of,
    set_aside,
    timestamp,
)

log = structlog.get_logger("ultra_async.results.aggregator")


@dataclass(slots=True)
class Opened:
    """A results directory open for a run: the journal (locked) and what it already holds."""

    journal: Journal
    tree: StatsTree
    document: DatabaseDocument
    records: int


def open_results(out_dir: Path, names: ModelNames | None, layout: Layout | None) -> Opened:
    """Lock the journal, replay it into statistics and check the database beside it.

    Runs in a thread: reading a large journal must not stall the caller's event loop. Raises
    StorageError or DatabaseError (with what to do) when the directory cannot be used.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the output directory {out_dir}: {exc.strerror}"
        ) from None
    db_path, journal_path = out_dir / DATABASE_FILE, out_dir / JOURNAL_FILE
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
                f"`python -m ultra_async db migrate --out {out_dir}` to import it, "
                "or start over with --fresh (the old files are kept in a backup folder)"
            )
        created_at = str((existing or {}).get("created_at") or timestamp())
        remove_stale_temp_files(db_path)
        scan = JournalScan()
        tree = replay(journal_path, scan, names=names, layout=layout)
        raise_if_damaged(journal_path, scan)
        if scan.records == 0 and existing is not None and _has_counts(existing):
            raise DatabaseError(
                f"{db_path} holds results but {journal_path} is missing or empty, so they "
                f"cannot be carried forward; run `python -m ultra_async db migrate --out "
                f"{out_dir}` to import them, or start over with --fresh"
            )
        if scan.records == 0 and not scan.bad_lines and not tree.layout.workflow:
            # a new journal names its suite first, so a rebuild knows the dimensions
            # (a journal without that line is the workflow benchmark's, as it always was)
            journal.append(orjson.dumps(header_line(tree.layout)) + b"\n")
    except BaseException:
        journal.close()
        raise
    document = DatabaseDocument(created_at, tree.layout)
    document.update(tree.full_snapshot())
    return Opened(journal, tree, document, scan.records)


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

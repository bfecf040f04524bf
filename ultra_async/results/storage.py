"""An output directory's files: the database read back, damaged files set aside, a fresh start.

Atomic writes are in `atomic`, the journal in `journal` and reading it back in `journal_scan`;
their names stay importable from here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import structlog

from ..errors import DatabaseError
from .atomic import atomic_write, fsync_dir, remove_stale_temp_files
from .journal import JOURNAL_FILE, SUITE_RECORD, Journal, ensure_unlocked, not_a_file
from .journal_scan import (
    JournalEntry,
    JournalScan,
    done_ids,
    iter_journal,
    iter_journal_lines,
    raise_if_damaged,
    read_journal,
)
from .stats import SCHEMA_VERSION

__all__ = [
    "DATABASE_FILE",
    "JOURNAL_FILE",
    "SUITE_RECORD",
    "Journal",
    "JournalEntry",
    "JournalScan",
    "atomic_write",
    "done_ids",
    "ensure_unlocked",
    "fresh_start",
    "fsync_dir",
    "iter_journal",
    "iter_journal_lines",
    "not_a_file",
    "raise_if_damaged",
    "read_database",
    "read_journal",
    "remove_stale_temp_files",
    "schema_of",
    "set_aside",
    "timestamp",
]

DATABASE_FILE = "master_database.json"

log = structlog.get_logger("ultra_async.results.storage")


def timestamp() -> str:
    """The current UTC time as ISO 8601 (the database's `created_at`/`last_updated`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_database(path: Path) -> dict[str, Any]:
    """Parse a database file; DatabaseError when it is not a JSON object."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatabaseError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise DatabaseError(
            f"{path} is a directory, not a database; run "
            f"`python -m ultra_async db repair --out {path.parent}` to set it aside and "
            "rebuild the database from the journal"
        ) from None
    except OSError as exc:
        raise DatabaseError(
            f"cannot read {path}: {exc.strerror or exc}; check its permissions"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise DatabaseError(
            f"{path} is not valid JSON ({exc}); run "
            f"`python -m ultra_async db repair --out {path.parent}` to rebuild it from the journal"
        ) from None
    if not isinstance(data, dict):
        raise DatabaseError(f"{path} does not hold a JSON object; run `db repair`")
    return data


def schema_of(db: dict[str, Any]) -> str:
    """ "current" (4.0), "older" (what `db migrate` imports: 3.x, or no version but models),
    or "unusable" (no known schema, e.g. `{}`): set aside and rebuilt from the journal."""
    version = db.get("version")
    if version == SCHEMA_VERSION:
        return "current"
    if str(version).startswith("3") or (version is None and db.get("models")):
        return "older"
    return "unusable"


def set_aside(path: Path, tag: str) -> Path:
    """Rename a damaged or superseded file to `<name>.<tag>-<time>` beside it; never delete."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
    os.replace(path, target)
    return target


def fresh_start(out_dir: Path) -> Path | None:
    """Move the database and journal into `out_dir/backup-<time>/`; returns that folder.

    Nothing is deleted; returns None when there was nothing to move.
    """
    out_dir = Path(out_dir)
    files = [out_dir / name for name in (DATABASE_FILE, JOURNAL_FILE) if (out_dir / name).exists()]
    if not files:
        return None
    ensure_unlocked(out_dir / JOURNAL_FILE)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = out_dir / f"backup-{stamp}"
    n = 1
    while backup.exists():
        n += 1
        backup = out_dir / f"backup-{stamp}-{n}"
    backup.mkdir()
    for path in files:
        os.replace(path, backup / path.name)
    fsync_dir(out_dir)
    log.info("fresh_start_backup", backup=str(backup), files=[p.name for p in files])
    return backup

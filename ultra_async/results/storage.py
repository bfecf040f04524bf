"""Files of an output directory: atomic database writes, the journal, backups."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from ..errors import DatabaseError, StorageError
from ..types import TestResult
from .records import result_from_record
from .stats import IMPORTED_LEAF, SCHEMA_VERSION

#: the journal's first line: which suite and dimensions its records belong to
SUITE_RECORD = "suite"

DATABASE_FILE = "master_database.json"
JOURNAL_FILE = "results.jsonl"

log = structlog.get_logger("ultra_async.results.storage")


def timestamp() -> str:
    """The current UTC time as ISO 8601 (the database's `created_at`/`last_updated`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks: bytes | Iterable[bytes], *, durable: bool = True) -> int:
    """Replace `path` with `chunks` all at once; returns the bytes written.

    Writes a temporary file in the same directory, fsyncs it, renames it over `path` and
    fsyncs the directory, so readers see the old or the new file, never a mix. The
    temporary file is removed on any failure.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    written = 0
    try:
        with open(tmp, "wb") as f:
            # One write call per chunk keeps each GIL hold short when called from a thread.
            for chunk in [chunks] if isinstance(chunks, bytes) else chunks:
                written += f.write(chunk)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StorageError(
            f"could not write {path}: {exc.strerror or exc}; free disk space or fix the "
            "directory's permissions (the journal still holds every result; "
            f"`python -m ultra_async db rebuild --out {path.parent}` recreates the database)"
        ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return written


def remove_stale_temp_files(path: Path) -> None:
    """Delete temporary files a killed writer left beside `path` (call with the journal locked)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            log.info("stale_temp_file_removed", path=str(tmp))


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


def not_a_file(path: Path) -> str:
    """The message for a journal path that is a directory."""
    return (
        f"{path} is a directory, not the journal; run "
        f"`python -m ultra_async db repair --out {path.parent}` to set it aside"
    )


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


class Journal:
    """The append-only journal, held open and locked by the one process writing results."""

    def __init__(self, path: Path, fd: int, dropped_bytes: int) -> None:
        self.path = path
        self._fd = fd
        #: bytes of a torn last line (from a crash) removed when the journal was opened
        self.dropped_bytes = dropped_bytes

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open for appending; locks it and removes a torn last line left by a crash."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except IsADirectoryError:
            raise StorageError(not_a_file(path)) from None
        except OSError as exc:
            raise StorageError(
                f"cannot open the journal {path}: {exc.strerror}; "
                f"check that {path.parent} is a writable directory"
            ) from None
        try:
            _lock(fd, path)
            dropped = _drop_torn_tail(fd)
        except BaseException:
            os.close(fd)
            raise
        if dropped:
            log.warning("journal_torn_tail_dropped", path=str(path), bytes=dropped)
        return cls(path, fd, dropped)

    def append(self, data: bytes) -> None:
        """Write whole lines to the OS (not yet fsynced); StorageError if that fails."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise StorageError(
                f"could not append to {self.path}: {exc.strerror or exc}; results already "
                "in the journal are safe; free disk space and rerun to finish the rest"
            ) from exc

    def sync(self) -> None:
        """fsync the journal: everything appended so far survives a power loss."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise StorageError(
                f"could not flush {self.path} to disk: {exc.strerror or exc}; "
                "check the disk and rerun (the plan resumes from the journal)"
            ) from exc

    def close(self) -> None:
        """Release the lock and the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _lock(fd: int, path: Path) -> None:
    # flock is released by the kernel when the process dies, so a crash never leaves it stale.
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StorageError(
            f"another process is writing to {path}; wait for it to finish "
            "or choose another --out directory"
        ) from None


def ensure_unlocked(path: Path) -> None:
    """StorageError if a running process holds the journal at `path`."""
    if not path.exists():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        _lock(fd, path)
    finally:
        os.close(fd)


def _drop_torn_tail(fd: int) -> int:
    # A crash mid-append leaves a last line without its newline. It was never counted, so
    # dropping it loses nothing, and appending after it would corrupt the next record.
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        block = os.pread(fd, end - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        end = start
    if end < size:
        os.ftruncate(fd, end)
    return size - end


@dataclass(slots=True)
class JournalScan:
    """What reading a journal found besides its records."""

    records: int = 0
    torn_tail_bytes: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


JournalEntry = TestResult | dict[str, Any]


def iter_journal(path: Path, scan: JournalScan | None = None) -> Iterator[JournalEntry]:
    """Journal entries in order: TestResult records and imported-leaf dicts.

    Problems never raise here; they are noted in `scan` (a torn last line, unreadable lines).
    """
    for _, entry in iter_journal_lines(path, scan):
        yield entry


def iter_journal_lines(
    path: Path, scan: JournalScan | None = None
) -> Iterator[tuple[bytes, JournalEntry]]:
    """Like `iter_journal`, with each entry's raw line (to rewrite a journal without damage)."""
    scan = scan if scan is not None else JournalScan()
    if not path.exists():
        return
    if path.is_dir():
        raise DatabaseError(not_a_file(path))
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                scan.torn_tail_bytes = len(line)
                break
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                scan.bad_lines.append((lineno, "not valid JSON"))
                continue
            entry = _entry(obj)
            if isinstance(entry, str):
                scan.bad_lines.append((lineno, entry))
                continue
            scan.records += 1
            yield line, entry


def _entry(obj: object) -> JournalEntry | str:
    """The entry of one parsed line, or why it is not one."""
    if not isinstance(obj, dict):
        return "not a result record"
    if obj.get("record") in (IMPORTED_LEAF, SUITE_RECORD):
        return obj
    try:
        return result_from_record(obj)
    except (TypeError, ValueError) as exc:
        return f"not a valid result record ({exc})"


def raise_if_damaged(path: Path, scan: JournalScan) -> None:
    """DatabaseError naming the first unreadable line, if the scan found any."""
    if scan.bad_lines:
        lineno, reason = scan.bad_lines[0]
        raise DatabaseError(
            f"{path} line {lineno} is {reason} ({len(scan.bad_lines)} bad line(s)); "
            f"run `python -m ultra_async db repair --out {path.parent}`"
        )


def read_journal(path: Path) -> list[TestResult]:
    """The result records of a journal; a torn last line is ignored, other damage raises."""
    scan = JournalScan()
    results = [e for e in iter_journal(Path(path), scan) if isinstance(e, TestResult)]
    raise_if_damaged(Path(path), scan)
    return results


def done_ids(out_dir: Path) -> set[str]:
    """Ids of work items the journal in `out_dir` holds a completed record for.

    Items whose records are all infra errors are not done, so a rerun retries them.
    """
    path = Path(out_dir) / JOURNAL_FILE
    scan = JournalScan()
    done = {
        e.item_id
        for e in iter_journal(path, scan)
        if isinstance(e, TestResult) and e.outcome == "completed"
    }
    raise_if_damaged(path, scan)
    return done


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

"""The append-only journal held open by the one process writing results: lock, torn tail."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import structlog

from ..errors import StorageError

#: the journal's first line: which suite and dimensions its records belong to
SUITE_RECORD = "suite"

JOURNAL_FILE = "results.jsonl"

log = structlog.get_logger("ultra_async.results.storage")


def not_a_file(path: Path) -> str:
    """The message for a journal path that is a directory."""
    return (
        f"{path} is a directory, not the journal; run "
        f"`python -m ultra_async db repair --out {path.parent}` to set it aside"
    )


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

"""Atomic writes: a temporary file fsynced and renamed over the old one; stale temporaries."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import structlog

from ..errors import StorageError

log = structlog.get_logger("ultra_async.results.storage")


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

"""Reading a journal back: its entries in order, and the damage a scan found."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..errors import DatabaseError
from ..types import TestResult
from .journal import JOURNAL_FILE, SUITE_RECORD, not_a_file
from .records import result_from_record
from .stats import IMPORTED_LEAF


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

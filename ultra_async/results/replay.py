"""The statistics a journal implies: its suite header, its records and imported leaves, replayed.

The database is a pure function of the journal, and this is that function. A record that
replaced an earlier final record (a rerun of an error or of a changed case) needs the earlier
record's contribution taken back; when a journal holds such a replacement, a second pass keeps
the records that will be replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import DatabaseError
from ..naming import ModelNames
from ..types import TestResult
from .layout import Layout, layout_from_header
from .stats import IMPORTED_LEAF, StatsTree
from .storage import SUITE_RECORD, JournalScan, iter_journal


def replay(
    path: Path,
    scan: JournalScan | None = None,
    *,
    names: ModelNames | None = None,
    layout: Layout | None = None,
) -> StatsTree:
    """Replay a journal into a StatsTree; `layout`, if given, must match the journal's suite.

    Problems with lines are noted in `scan` (see `storage.iter_journal`); a journal of another
    suite than `layout` raises DatabaseError.
    """
    scan = scan if scan is not None else JournalScan()
    tree = _pass(path, scan, names, layout, frozenset())
    if tree.unresolved:
        tree = _pass(path, JournalScan(), names, layout, frozenset(tree.unresolved))
    return tree


def remember_records(tree: StatsTree, journal: Path, item_ids: frozenset[str]) -> None:
    """Have `tree` keep the journaled final records of `item_ids`, so that records replacing
    them (a rerun of errors or of changed cases) can take their counts out."""
    tree.keep(item_ids)
    for entry in iter_journal(journal):
        if isinstance(entry, TestResult) and entry.item_id in item_ids:
            tree.remember(entry)


def _pass(
    path: Path,
    scan: JournalScan,
    names: ModelNames | None,
    layout: Layout | None,
    keep: frozenset[str],
) -> StatsTree:
    tree: StatsTree | None = None
    for entry in iter_journal(path, scan):
        if tree is None:
            header = entry if isinstance(entry, dict) and _is_header(entry) else None
            tree = StatsTree(names, _layout_for(path, header, layout))
            tree.keep(keep)
            if header is not None:
                continue
        if isinstance(entry, TestResult):
            tree.add_result(entry)
        elif entry.get("record") == IMPORTED_LEAF:
            tree.add_imported(entry)
        # a header further down (two runs of one suite appended) names the same suite: skip it
    if tree is None:
        tree = StatsTree(names, layout)
        tree.keep(keep)
    return tree


def _is_header(entry: Mapping[str, Any]) -> bool:
    return entry.get("record") == SUITE_RECORD


def _layout_for(path: Path, header: Mapping[str, Any] | None, wanted: Layout | None) -> Layout:
    found = layout_from_header(header)
    if wanted is None:
        return found
    if (found.suite, found.dimensions) != (wanted.suite, wanted.dimensions):
        raise DatabaseError(
            f"{path} holds results of suite {found.suite!r} with dimensions "
            f"{', '.join(found.dimensions)}, not of suite {wanted.suite!r} "
            f"({', '.join(wanted.dimensions)}); use another --out directory, or --fresh"
        )
    return wanted


def header_line(layout: Layout) -> dict[str, Any]:
    """The first line of a new journal: which suite and dimensions its records belong to."""
    return {"record": SUITE_RECORD, **layout.header()}

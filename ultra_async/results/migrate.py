"""Import a database written by the older tool (schema 3.0), or a 4.0 one whose journal is lost.

Its leaves become `imported_leaf` journal lines, so the database stays a pure function of the
journal and later runs add to the imported counts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from ..errors import DatabaseError
from ..naming import ModelNames
from ..suites.workflow.dimensions import rate_key
from .check import Report, load_tree, render
from .invariants import _name
from .layout import ADDED_COUNTERS
from .storage import (
    DATABASE_FILE,
    JOURNAL_FILE,
    Journal,
    atomic_write,
    ensure_unlocked,
    raise_if_damaged,
    read_database,
    set_aside,
    timestamp,
)
from .vectors import (
    COUNTER_FIELDS,
    EXACT_FIELDS,
    FAILURE,
    FULL,
    IMPORTED_LEAF,
    INFRA,
    LEAF_DEPTH,
    LEVEL_KEYS,
    MEANS,
    PARTIAL,
    SCALE,
    SCHEMA_VERSION,
    TOTAL,
    WORKFLOW,
    new_vector,
    node_fields,
    vector_from_fields,
)


def _number(leaf: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = leaf.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
    return None


def v3_leaf_vector(leaf: Mapping[str, Any]) -> tuple[list[int], list[str], list[str]]:
    """Convert a schema-3.0 leaf: (vector, fields it lacked, notes on guesses made).

    3.0 spelled counts `success`/`successful`, `partial`, `failed` and often left counters
    out; missing counters are 0. Means become sums (mean × total), as exact as they were
    stored; a missing mean cannot be recovered and contributes 0.
    """
    vector, missing, notes = new_vector(), [], []
    success = _number(leaf, "success", "successful")
    partial = int(_number(leaf, "partial_success", "partial") or 0)
    full = _number(leaf, "full_success")
    failed = _number(leaf, "failure", "failed", "failures")
    total = _number(leaf, "total", "total_tests")
    if full is None:
        full = success or 0
        # Some 3.0 writers counted partial successes inside `success`; the totals tell which.
        if (
            success is not None
            and total is not None
            and failed is not None
            and success + failed == total
            and success + partial + failed != total
        ):
            full = success - partial
            notes.append("`success` included partial successes")
    if failed is None:
        failed = max(0, (total or 0) - full - partial)
    if total is not None and full + partial + failed != total:
        notes.append(f"counts disagreed with total={total:g}; total set to their sum")
    vector[FULL], vector[PARTIAL], vector[FAILURE] = int(full), partial, int(failed)
    vector[TOTAL] = int(full) + partial + int(failed)
    for i, name in enumerate(COUNTER_FIELDS):
        if i > INFRA and name not in ADDED_COUNTERS:
            value = _number(leaf, name)
            vector[i] = int(value or 0)
            if value is None:
                missing.append(name)
    for mean, _, name in MEANS:
        value = _number(leaf, mean)
        index = WORKFLOW.measures[name].index
        vector[index] = round(value * vector[TOTAL] * SCALE) if value is not None else 0
        if value is None:
            missing.append(mean)
    return vector, missing, notes


def migrate(
    out_dir: Path, source: Path | None = None, *, names: ModelNames | None = None
) -> Report:
    """Import an older database (schema 3.0, or a 4.0 one whose journal is lost) into `out_dir`.

    Its leaves become `imported_leaf` journal lines, so the database stays a pure function of
    the journal and later runs add to the imported counts. A source inside `out_dir` is kept
    beside it under a new name; nothing is deleted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    journal, db_path = out_dir / JOURNAL_FILE, out_dir / DATABASE_FILE
    source = Path(source) if source is not None else db_path
    old = read_database(source)
    version = str(old.get("version", "3.0"))
    if not version.startswith(("3", "4")):
        raise DatabaseError(f"{source} has schema {version!r}; only 3.x and 4.0 can be migrated")
    ensure_unlocked(journal)
    tree, scan = load_tree(out_dir, names)
    raise_if_damaged(journal, scan)
    if tree.snapshot().imports:
        raise DatabaseError(
            f"{journal} already holds imported statistics; migrate into an empty --out directory"
        )
    if version == SCHEMA_VERSION and source.resolve() == db_path.resolve() and scan.records:
        raise DatabaseError(f"{db_path} is already 4.0 and backed by its journal; nothing to do")
    report, now = Report(), timestamp()
    lines: list[bytes] = []
    missing: dict[str, int] = {}
    for path, leaf in _old_leaves(old, report):
        lacking: list[str] = []
        notes: list[str] = []
        if version == SCHEMA_VERSION:
            vector = vector_from_fields(leaf)
        else:
            vector, lacking, notes = v3_leaf_vector(leaf)
        for name in lacking:
            missing[name] = missing.get(name, 0) + 1
        report.problems += [f"{'/'.join(path)}: {note}" for note in notes]
        stats = {k: v for k, v in node_fields(vector).items() if k in EXACT_FIELDS}
        record = {
            "record": IMPORTED_LEAF,
            "source": str(source.resolve()),
            "from_version": version,
            "imported_at": now,
            "path": list(path),
            "stats": stats,
        }
        lines.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    if not lines:
        raise DatabaseError(
            f"{source} holds no statistics to import (no model has a leaf); nothing was changed"
        )
    if source.resolve() == db_path.resolve():
        report.actions.append(f"kept the old database as {set_aside(db_path, f'v{version}')}")
    j = Journal.open(journal)
    try:
        j.append(b"".join(lines))
        j.sync()
    finally:
        j.close()
    tree, _ = load_tree(out_dir, names)
    atomic_write(db_path, render(tree, str(old.get("created_at") or now)))
    report.actions.append(f"imported {len(lines)} leaves into {journal} and wrote {db_path}")
    by_count: dict[int, list[str]] = {}
    for name, count in missing.items():
        by_count.setdefault(count, []).append(name)
    report.info["not_recovered"] = [
        f"{', '.join(fields)} (absent in {count} of {len(lines)} leaves; counted as 0)"
        for count, fields in sorted(by_count.items(), reverse=True)
    ]
    report.info.update(leaves=len(lines), total=tree.nodes[()][TOTAL])
    return report


def _old_leaves(old: Mapping[str, Any], report: Report) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, leaf) of every leaf in an older database, rate keys normalized."""

    def walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        if len(path) == LEAF_DEPTH:
            yield path, node
            return
        children = node.get(LEVEL_KEYS[len(path)]) if isinstance(node, Mapping) else None
        if not isinstance(children, Mapping):
            if path:
                report.problems.append(f"{_name(path)}: no {LEVEL_KEYS[len(path)]}; skipped")
            return
        for name in sorted(children):
            key = str(name)
            if len(path) == 2:
                with contextlib.suppress(ValueError):
                    key = rate_key(float(name))
            if isinstance(children[name], Mapping):
                yield from walk(children[name], (*path, key))

    yield from walk(old, ())

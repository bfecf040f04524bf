"""Database maintenance: check, rebuild and repair from the journal; invariants; comparisons.

Exit codes of `check` (also used by `python -m ultra_async db check`), lowest problem wins:
0 consistent; 3 database missing or not valid JSON; 4 wrong schema version or missing fields;
5 statistics invariants broken; 6 database disagrees with the journal; 7 journal damaged.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Mapping
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
from .layout import FIXED_COUNTERS, Layout, layout_of_database
from .replay import replay
from .stats import REQUIRED_FIELDS, SCHEMA_VERSION, TOTAL, StatsTree, node_fields
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

#: fields that legitimately differ between two runs with the same results
_VOLATILE = frozenset({"created_at", "last_updated", "imported_at"})
#: fields that differ between a run and its replay from the cache (a cached reply costs nothing)
_TIMING = frozenset(
    {"avg_execution_time", "sum_execution_time", "cached_requests", "total_cost", "avg_cost"}
)


def comparable(db: Mapping[str, Any]) -> dict[str, Any]:
    """The database without timestamps and execution-time fields, for comparing two runs."""

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            skip = _VOLATILE | _TIMING
            return {k: strip(v) for k, v in value.items() if k not in skip}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    result: dict[str, Any] = strip(db)
    return result


def _nodes(
    db: Mapping[str, Any], layout: Layout | None = None
) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any], list[Any]]]:
    """(path, stats, children's stats) for every node that has children; leaves are flat."""
    layout = layout or layout_of_database(db)
    depth, level_keys = layout.depth, layout.level_keys

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[Any]:
        children = node.get(level_keys[len(path)])
        if not isinstance(children, Mapping):
            raise DatabaseError(f"{_name(path)} has no {level_keys[len(path)]} object")
        kids: list[Any] = []
        for name in sorted(children):
            child = children[name]
            if not isinstance(child, Mapping):
                raise DatabaseError(f"{_name((*path, name))} is not an object")
            kids.append(child if len(path) + 1 == depth else child.get("overall_stats"))
        yield path, node.get("overall_stats"), kids
        if len(path) + 1 < depth:
            for name in sorted(children):
                yield from walk(children[name], (*path, name))

    yield from walk(db, ())


def _name(path: tuple[str, ...]) -> str:
    return "/".join(path) if path else "root"


def check_invariants(db: Mapping[str, Any]) -> list[tuple[int, str]]:
    """Schema (code 4) and invariant (code 5) problems of a database document; [] when sound."""
    problems: list[tuple[int, str]] = []
    if db.get("version") != SCHEMA_VERSION:
        hint = (
            "run `db migrate`" if str(db.get("version", "")).startswith("3") else "run `db rebuild`"
        )
        problems.append((EXIT_SCHEMA, f"schema version {db.get('version')!r}, not 4.0; {hint}"))
        return problems
    layout = layout_of_database(db)
    all_fields = node_fields((0,) * layout.width, layout)
    required = REQUIRED_FIELDS if layout.workflow else tuple(all_fields)
    counters = [f for f in (*FIXED_COUNTERS, *(f"{c}_errors" for c in layout.categories))]
    sums = [m.sum_field for m in layout.measures.values()]
    errors = [f"{c}_errors" for c in layout.categories]
    try:
        nodes = list(_nodes(db, layout))
    except DatabaseError as exc:
        return [(EXIT_SCHEMA, str(exc))]
    for path, stats, kids in nodes:
        malformed = False
        for where, node in [(path, stats)] + [((*path, "*"), k) for k in kids]:
            if not isinstance(node, Mapping):
                problems.append((EXIT_SCHEMA, f"{_name(where)}: statistics missing"))
                malformed = True
                continue
            missing = [f for f in required if not _is_number(node.get(f))]
            if missing:
                problems.append((EXIT_SCHEMA, f"{_name(where)}: fields missing: {missing[:4]}"))
                malformed = True
        if malformed:
            continue
        assert isinstance(stats, Mapping)
        problems += [
            (EXIT_INVARIANTS, f"{_name(path)}: {m}") for m in _node_invariants(stats, errors)
        ]
        for f in counters:
            if stats.get(f, 0) != sum(k.get(f, 0) for k in kids):
                problems.append((EXIT_INVARIANTS, f"{_name(path)}: {f} is not the sum of children"))
        for f in sums:
            if not math.isclose(
                stats.get(f, 0), math.fsum(k.get(f, 0) for k in kids), rel_tol=1e-9, abs_tol=1e-6
            ):
                problems.append((EXIT_INVARIANTS, f"{_name(path)}: {f} is not the sum of children"))
        if len(path) + 1 == layout.depth:
            for kid in kids:
                problems += [
                    (EXIT_INVARIANTS, f"{_name(path)}/leaf: {m}")
                    for m in _node_invariants(kid, errors)
                ]
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _node_invariants(s: Mapping[str, Any], error_fields: list[str]) -> list[str]:
    out = []
    if s["success"] + s["failure"] != s["total"]:
        out.append("success + failure != total")
    if s["full_success"] + s["partial_success"] != s["success"]:
        out.append("full_success + partial_success != success")
    if sum(s.get(f, 0) for f in error_fields) != s["total_errors"]:
        out.append("total_errors is not the sum of the categories")
    return out


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


def _differences(db: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    left, right = comparable(db), comparable(expected)
    if left == right:
        return []
    found: list[str] = []
    for key in ("summary", "overall_stats", "imports"):
        if left.get(key) != right.get(key):
            found.append(key)
    ours = {p: s for p, s, _ in _nodes(left)}
    theirs = {p: s for p, s, _ in _nodes(right)}
    for path in sorted(ours.keys() | theirs.keys()):
        if path and ours.get(path) != theirs.get(path):
            found.append(_name(path))
    return found or ["the document"]


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


def _has_counts(db: Mapping[str, Any]) -> bool:
    stats = db.get("overall_stats")
    return isinstance(stats, Mapping) and bool(stats.get("total") or stats.get("infra_errors"))


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
        from .migrate import migrate  # migrate builds on this module

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

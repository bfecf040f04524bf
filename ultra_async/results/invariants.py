"""A database document judged on its own: its tree of nodes, schema and invariants; comparisons."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import DatabaseError
from ..exitcodes import EXIT_INVARIANTS, EXIT_SCHEMA
from .layout import FIXED_COUNTERS, Layout, layout_of_database
from .stats import REQUIRED_FIELDS, SCHEMA_VERSION, node_fields

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
    counters += [m.count_field for m in layout.measures.values() if m.count_index is not None]
    sums = [m.sum_field for m in layout.measures.values()]
    sums += [m.squares_field for m in layout.measures.values() if m.squares_index is not None]
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

"""Rows of a report: the database's leaves summed per (model, value of one dimension)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import add
from typing import Any

from ..results.export import iter_leaves
from ..results.stats import DIMENSIONS, SHARE_FIELDS, new_vector, node_fields
from ..results.stats import vector_from_fields as _vector
from ..suites.workflow.dimensions import DIFFICULTIES, PROMPT_TYPES, TASK_TYPES

#: the dimensions a report can be broken down by, beside the model
BY_DIMENSIONS: tuple[str, ...] = ("prompt_type", "difficulty", "tool_success_rate", "task_type")
DEFAULT_MIN_TESTS = 5

#: the statistics of a report row, after `model` and the `by` dimension
REPORT_FIELDS: tuple[str, ...] = (
    "total",
    "success_rate",
    "full_success_rate",
    "partial_success_rate",
    "weighted_success_score",
    "tool_coverage_rate",
    "avg_workflow_score",
    "avg_final_score",
    "infra_errors",
    "total_errors",
    *SHARE_FIELDS,
)

#: the order values of each dimension are listed in (unknown values follow, sorted)
_ORDER: dict[str, tuple[str, ...]] = {
    "prompt_type": PROMPT_TYPES,
    "difficulty": DIFFICULTIES,
    "task_type": TASK_TYPES,
}


def group_leaves(db: Mapping[str, Any], keys: Sequence[str]) -> dict[tuple[str, ...], list[int]]:
    """The statistics vector of every combination of `keys` (dimension names), summed over leaves.

    Counters and fixed-point sums add exactly; render a vector with `stats.node_fields`.
    """
    index = [DIMENSIONS.index(key) for key in keys]
    groups: dict[tuple[str, ...], list[int]] = {}
    for path, leaf in iter_leaves(db):
        cell = tuple(path[i] for i in index)
        vector = groups.get(cell)
        leaf_vector = _vector(leaf)
        groups[cell] = leaf_vector if vector is None else list(map(add, vector, leaf_vector))
    return groups


def sort_key(dimension: str, value: str) -> tuple[int, float, str]:
    """Where a value of `dimension` goes in a listing: known values in their natural order."""
    if dimension == "tool_success_rate":
        try:
            return (0, float(value), value)
        except ValueError:
            return (1, 0.0, value)
    order = _ORDER.get(dimension, ())
    return (0, order.index(value), value) if value in order else (1, 0.0, value)


def report_rows(
    db: Mapping[str, Any], by: str = "prompt_type", min_tests: int = DEFAULT_MIN_TESTS
) -> list[dict[str, Any]]:
    """One row per (model, value of `by`): model, `by`, REPORT_FIELDS, then `few_tests`.

    `few_tests` is true when the cell has fewer than `min_tests` completed tests.
    """
    if by not in BY_DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(BY_DIMENSIONS)}, not {by!r}")
    groups = group_leaves(db, ("model", by))
    rows = []
    for model, value in sorted(groups, key=lambda c: (c[0], sort_key(by, c[1]))):
        fields = node_fields(groups[model, value])
        row: dict[str, Any] = {"model": model, by: value}
        row.update((name, fields[name]) for name in REPORT_FIELDS)
        row["few_tests"] = fields["total"] < min_tests
        rows.append(row)
    return rows


def overall(db: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics of the whole database (summed from its leaves)."""
    return node_fields(group_leaves(db, ()).get((), new_vector()))

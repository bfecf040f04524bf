"""The statistics model (schema 4.0): per-node counters and exact sums, rendered as database fields.

Every node of the database keeps one vector of integers laid out by the suite's `Layout`. Sums
of per-test values are kept in fixed point (units of 1/SCALE), so adding them is exact integer
arithmetic: the totals, and the means derived from them, do not depend on the order results
arrive in, and a parent is exactly the sum of its children. Means are computed from these sums
only when a node is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import zip_longest
from operator import add
from typing import Any

from ..types import TestResult
from .layout import (
    ADDED_COUNTERS,
    CACHED,
    COST,
    EVALUATE_ERRORS,
    EXECUTION_TIME,
    FAILURE,
    FIXED_COUNTERS,
    FULL,
    IN_TOKENS,
    INFRA,
    OUT_TOKENS,
    PARTIAL,
    REQUEST_ERRORS,
    SCALE,
    TOTAL,
    Layout,
    Measure,
    workflow_layout,
)

__all__ = [
    "CACHED",
    "EVALUATE_ERRORS",
    "FAILURE",
    "FULL",
    "INFRA",
    "PARTIAL",
    "REQUEST_ERRORS",
    "SCALE",
    "TOTAL",
]

SCHEMA_VERSION = "4.0"
#: the workflow suite's layout: the schema-4.0 fields the module-level names below describe
WORKFLOW = workflow_layout()

#: the dimensions of a workflow leaf's path, root to leaf
DIMENSIONS: tuple[str, ...] = ("model", *WORKFLOW.dimensions)
#: the key under which a workflow node at depth d (model = 1) keeps its children
LEVEL_KEYS: tuple[str, ...] = WORKFLOW.level_keys
LEAF_DEPTH = WORKFLOW.depth
#: (mean field, stored sum field, measure) of the workflow suite; every mean is over `total`
MEANS: tuple[tuple[str, str, str], ...] = tuple(
    (m.mean_field, m.sum_field, m.name) for m in WORKFLOW.measures.values() if m.mean_field
)
ERROR_FIELDS: tuple[str, ...] = tuple(f"{c}_errors" for c in WORKFLOW.categories)
SHARE_FIELDS: tuple[str, ...] = tuple(f"{c}_error_share" for c in WORKFLOW.categories)
#: the counters of a workflow node stored verbatim in the database
COUNTER_FIELDS: tuple[str, ...] = (*FIXED_COUNTERS, *ERROR_FIELDS)
#: the fields from which a workflow node vector can be rebuilt exactly (sums as floats)
EXACT_FIELDS: tuple[str, ...] = (
    *COUNTER_FIELDS,
    *(m.sum_field for m in WORKFLOW.measures.values()),
)

#: a node's statistics; the tree keeps them as tuples, which the garbage collector skips
Vector = Sequence[int]
Frozen = tuple[int, ...]
NodePath = tuple[str, ...]
IMPORTED_LEAF = "imported_leaf"
_LEVEL_INDEX = {"full_success": FULL, "partial_success": PARTIAL}
_ERROR_KIND_INDEX = {
    "infra_error": INFRA,
    "request_error": REQUEST_ERRORS,
    "evaluate_error": EVALUATE_ERRORS,
}


def fixed(value: object) -> int:
    """A value in fixed point; anything that is not a finite number counts as 0."""
    if isinstance(value, bool):
        return int(value) * SCALE
    if isinstance(value, int):
        return value * SCALE
    if isinstance(value, float) and math.isfinite(value):
        return round(value * SCALE)
    return 0


def new_vector(layout: Layout = WORKFLOW) -> list[int]:
    """The vector of a node where nothing has happened yet."""
    return [0] * layout.width


def result_delta(result: TestResult, layout: Layout = WORKFLOW) -> Frozen:
    """What one record adds to every node on its path."""
    delta = [0] * layout.width
    kind_index = _ERROR_KIND_INDEX.get(result.outcome)
    if kind_index is not None:
        delta[kind_index] = 1
        return tuple(delta)
    delta[TOTAL] = 1
    delta[_LEVEL_INDEX.get(result.success_level, FAILURE)] = 1
    delta[IN_TOKENS] = int(result.input_tokens or 0)
    delta[OUT_TOKENS] = int(result.output_tokens or 0)
    delta[CACHED] = int(result.cached_requests or 0)
    if result.error_category is not None:
        index = layout.category_index(result.error_category)
        if index is None:
            index = layout.category_index("other")
        if index is not None:
            delta = _fit(delta, layout)
            delta[index] = 1
    sums: list[tuple[int, float]] = [
        (layout.measure_index(EXECUTION_TIME), result.execution_time_s),
        (layout.measure_index(COST), result.cost),
    ]
    if result.score is not None and not layout.workflow:
        sums.append((layout.measure_index("score"), result.score))
    for name, value in result.metrics.items():
        if layout.workflow and name not in layout.measures:
            continue  # the workflow database has a fixed set of fields
        sums.append((layout.measure_index(name), value))
    delta = _fit(delta, layout)
    for index, value in sums:
        delta[index] = fixed(value)
    if not layout.workflow:
        # the tests that reported each metric (another suite's means are over these)
        measures = layout.measures
        if result.score is not None:
            _count_in(delta, measures["score"], result.score)
        for name, value in result.metrics.items():
            _count_in(delta, measures[name], value)
    return tuple(delta)


def _count_in(delta: list[int], measure: Measure, value: float) -> None:
    if measure.count_index is not None:
        delta[measure.count_index] = 1
    if measure.squares_index is not None:
        delta[measure.squares_index] = fixed(value * value)


def _fit(vector: list[int], layout: Layout) -> list[int]:
    # an open layout may have grown while the delta was being built
    if len(vector) < layout.width:
        vector.extend([0] * (layout.width - len(vector)))
    return vector


def vector_from_fields(node: Mapping[str, Any], layout: Layout = WORKFLOW) -> list[int]:
    """The vector behind stored node fields (exact for schema 4.0; missing fields are 0)."""
    vector = [0] * layout.width
    for i, name in enumerate(FIXED_COUNTERS):
        vector[i] = _count(node.get(name, 0))
    for category, index in layout.categories.items():
        vector[index] = _count(node.get(f"{category}_errors", 0))
    for measure in layout.measures.values():
        vector[measure.index] = fixed(node.get(measure.sum_field, 0))
        if measure.count_index is not None:
            # a database written before metrics were counted: every test counted
            vector[measure.count_index] = _count(node.get(measure.count_field, node.get("total")))
        if measure.squares_index is not None:
            vector[measure.squares_index] = fixed(node.get(measure.squares_field, 0))
    return vector


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value)


def _ratio(num: int, den: int) -> float:
    # int / int is correctly rounded in Python, so the result depends only on the integers.
    return num / den if den else 0.0


def node_fields(vector: Vector, layout: Layout = WORKFLOW) -> dict[str, Any]:
    """The database fields of one node (leaf or overall_stats), in a fixed order."""
    plan = layout.render_plan()
    width = len(vector)
    if width < layout.width:  # a node last touched before an open layout grew
        vector = (*vector, *(0,) * (layout.width - width))
    total, full, partial, failure = vector[TOTAL], vector[FULL], vector[PARTIAL], vector[FAILURE]
    success = full + partial
    errors = [vector[i] for i in plan.error_slots]
    total_errors = sum(errors)
    out: dict[str, Any] = {
        "total": total,
        "success": success,
        "full_success": full,
        "partial_success": partial,
        "failure": failure,
        "infra_errors": vector[INFRA],
        "request_errors": vector[REQUEST_ERRORS],
        "evaluate_errors": vector[EVALUATE_ERRORS],
        "success_rate": _ratio(success, total),
        "full_success_rate": _ratio(full, total),
        "partial_success_rate": _ratio(partial, total),
        "failure_rate": _ratio(failure, total),
        "weighted_success_score": _ratio(2 * full + partial, 2 * total),
    }
    scaled_total = SCALE * total
    for name, index, count in plan.means:
        out[name] = _ratio(vector[index], scaled_total if count is None else SCALE * vector[count])
    out["total_input_tokens"] = vector[IN_TOKENS]
    out["total_output_tokens"] = vector[OUT_TOKENS]
    out["total_tokens"] = vector[IN_TOKENS] + vector[OUT_TOKENS]
    out["cached_requests"] = vector[CACHED]
    out["total_errors"] = total_errors
    out.update(zip(plan.error_fields, errors, strict=True))
    for name, count in zip(plan.share_fields, errors, strict=True):
        out[name] = _ratio(count, total_errors)
    for name, index in plan.sums:
        out[name] = vector[index] / SCALE
    for name, index in plan.counts:
        out[name] = vector[index]
    return out


#: every field of a workflow leaf and of every `overall_stats`, in the order they are written
NODE_FIELDS: tuple[str, ...] = tuple(node_fields(new_vector()))
#: the fields a 4.0 node must have (those added later are read as 0 when absent)
REQUIRED_FIELDS: tuple[str, ...] = tuple(
    f for f in NODE_FIELDS if f not in ADDED_COUNTERS and f != "total_cost"
)


def add_vectors(a: Frozen, b: Frozen) -> Frozen:
    """Two vectors added slot by slot."""
    if len(a) == len(b):
        return tuple(map(add, a, b))
    # an open layout grew: the shorter vector has zeros in the new slots
    return tuple(x + y for x, y in zip_longest(a, b, fillvalue=0))


def result_delta_kind(kind: str, layout: Layout) -> Frozen:
    """The delta of an error record of `kind` (a unit in its counter)."""
    delta = [0] * layout.width
    delta[_ERROR_KIND_INDEX[kind]] = 1
    return tuple(delta)


def negate(delta: Frozen) -> Frozen:
    """A delta taken back."""
    return tuple(-x for x in delta)

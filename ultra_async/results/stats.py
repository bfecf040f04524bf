"""The statistics model (schema 4.0): per-node counters and exact sums, rendered as database fields.

Every node of the database keeps one vector of integers laid out by the suite's `Layout`. Sums
of per-test values are kept in fixed point (units of 1/SCALE), so adding them is exact integer
arithmetic: the totals, and the means derived from them, do not depend on the order results
arrive in, and a parent is exactly the sum of its children. Means are computed from these sums
only when a node is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import zip_longest
from operator import add
from typing import Any

from ..naming import ModelNames
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
    return tuple(delta)


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
    for name, index in plan.means:
        out[name] = _ratio(vector[index], scaled_total)
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
    return out


#: every field of a workflow leaf and of every `overall_stats`, in the order they are written
NODE_FIELDS: tuple[str, ...] = tuple(node_fields(new_vector()))
#: the fields a 4.0 node must have (those added later are read as 0 when absent)
REQUIRED_FIELDS: tuple[str, ...] = tuple(
    f for f in NODE_FIELDS if f not in ADDED_COUNTERS and f != "total_cost"
)


def invalid_reason(result: TestResult, layout: Layout = WORKFLOW) -> str | None:
    """Why a result cannot be counted (None when it can); checked before it is journaled."""
    missing = [d for d in layout.dimensions if not result.labels.get(d)]
    if missing:
        return f"labels lack {', '.join(missing)}"
    return None


@dataclass(slots=True)
class Snapshot:
    """Copies of the nodes changed since the previous snapshot: safe to hand to another thread."""

    changed: dict[NodePath, Frozen]
    added: list[NodePath]
    imports: list[dict[str, Any]]


def _add(a: Frozen, b: Frozen) -> Frozen:
    if len(a) == len(b):
        return tuple(map(add, a, b))
    # an open layout grew: the shorter vector has zeros in the new slots
    return tuple(x + y for x, y in zip_longest(a, b, fillvalue=0))


#: distinct model names whose normalization is remembered (a run has a handful)
_NAMES_KEPT = 4096
#: the kinds of record that end an item for a plain rerun
FINAL_KINDS = frozenset({"completed", "request_error", "evaluate_error"})


class StatsTree:
    """All statistics in memory. Each work item counts once, by its latest final record.

    A final record (a result, a request error, an evaluate error) ends the item: later records
    change nothing, except one that replaces it on purpose — a rerun of an error
    (`--retry-errors`) or of a case whose digest changed (`--rerun-changed`). An infra error
    counts in `infra_errors` only while it is the item's latest record, so a successful retry
    moves the item from `infra_errors` into `total`; the statistics depend on which items ended
    how, not on how many attempts or crashes it took.
    """

    def __init__(self, names: ModelNames | None = None, layout: Layout | None = None) -> None:
        self.names = names or ModelNames()
        self.layout = layout or workflow_layout()
        self.nodes: dict[NodePath, Frozen] = {(): (0,) * self.layout.width}
        #: item id -> (kind of the record that counts, leaf path, case digest)
        self._items: dict[str, tuple[str, NodePath, str]] = {}
        #: final records kept so that a rerun can replace them (see `keep`)
        self._kept: dict[str, TestResult] = {}
        self._keep_ids: frozenset[str] = frozenset()
        #: items whose final record was replaced but could not be undone here (needs a replay)
        self.unresolved: set[str] = set()
        self._imports: dict[tuple[str, str], dict[str, Any]] = {}
        self._changed: set[NodePath] = {()}
        self._added: list[NodePath] = [()]
        #: names whose real model needs no hint, resolved once (see `normalize`)
        self._fixed_names: dict[str, str] = {}
        #: while `add_results` runs: each leaf's summed delta, applied once at the end
        self._batch: dict[NodePath, list[Frozen]] | None = None

    def normalize(self, result: TestResult) -> TestResult:
        """The result with its real model name (the same object when it is already real)."""
        # The item id starts with the model the work item was planned for; it resolves
        # instance names that several models share (`qwen-key1`).
        name = result.model
        model = self._fixed_names.get(name)
        if model is None:
            model = self.names.fixed(name)
            if model is not None and len(self._fixed_names) < _NAMES_KEPT:
                self._fixed_names[name] = model
            else:
                model = self.names.normalize(name, model_hint=_model_of(result))
        return result if model == name else replace(result, model=model)

    def is_done(self, item_id: str) -> bool:
        """True when the item has a final record."""
        state = self._items.get(item_id)
        return state is not None and state[0] in FINAL_KINDS

    def done_ids(self) -> set[str]:
        """Ids of every item with a completed record."""
        return {item_id for item_id, state in self._items.items() if state[0] == "completed"}

    def journaled(self) -> dict[str, tuple[str, str]]:
        """Every item with a final record: its kind and the case digest it ran with."""
        return {
            item_id: (kind, digest)
            for item_id, (kind, _, digest) in self._items.items()
            if kind in FINAL_KINDS
        }

    def keep(self, item_ids: frozenset[str]) -> None:
        """Keep the final records of these items as they are added, so a rerun can replace them."""
        self._keep_ids = item_ids

    def remember(self, result: TestResult) -> None:
        """Keep `result` if it is the record that counts for its item (see `keep`)."""
        state = self._items.get(result.item_id)
        if state is not None and state[0] == result.outcome and state[0] in FINAL_KINDS:
            self._kept[result.item_id] = result

    def replaces(self, result: TestResult) -> bool:
        """True when `result` replaces the item's final record (an error rerun, a changed case)."""
        state = self._items.get(result.item_id)
        if state is None or state[0] not in FINAL_KINDS or result.outcome not in FINAL_KINDS:
            return False
        kind, _, digest = state
        return kind != "completed" or (
            bool(digest) and bool(result.case_digest) and digest != result.case_digest
        )

    def add_result(self, result: TestResult, *, normalized: bool = False) -> str:
        """Count one record; returns its kind, `replaced`, `infra_repeat` or `duplicate`.

        `normalized`: the record's model is already the real model (see `normalize`).
        """
        item_id = result.item_id
        previous = self._items.get(item_id)
        kind = result.outcome
        if previous is not None and previous[0] in FINAL_KINDS:
            if not self.replaces(result):
                return "duplicate"
            old = self._kept.pop(item_id, None)
            if old is None:
                self.unresolved.add(item_id)
                return "duplicate"
            self._apply(previous[1], _negate(result_delta(old, self.layout)))
            self._count(result, kind, normalized)
            return "replaced"
        if kind == "infra_error" and previous is not None:
            return "infra_repeat"
        if previous is not None:  # an infra error, now followed by a final record
            self._apply(previous[1], _negate(result_delta_kind("infra_error", self.layout)))
        self._count(result, kind, normalized)
        return kind

    def _count(self, result: TestResult, kind: str, normalized: bool) -> None:
        cell = self._cell(result if normalized else self.normalize(result))
        self._items[result.item_id] = (kind, cell, result.case_digest)
        if kind in FINAL_KINDS and result.item_id in self._keep_ids:
            self._kept[result.item_id] = result
        self._apply(cell, result_delta(result, self.layout))

    def add_results(self, results: Iterable[TestResult], *, normalized: bool = False) -> list[str]:
        """`add_result` for each result in order; each touched leaf's path is updated once."""
        batch: dict[NodePath, list[Frozen]] = {}
        self._batch = batch
        try:
            return [self.add_result(result, normalized=normalized) for result in results]
        finally:
            self._batch = None
            for cell, deltas in batch.items():
                # integer sums: a batch's deltas added first give exactly the same nodes
                if len(deltas) == 1:
                    summed = deltas[0]
                elif len({len(d) for d in deltas}) == 1:
                    summed = tuple(map(sum, zip(*deltas, strict=True)))
                else:  # an open layout grew during the batch
                    summed = tuple(map(sum, zip_longest(*deltas, fillvalue=0)))
                self._apply(cell, summed)

    def add_imported(self, record: Mapping[str, Any]) -> None:
        """Add one leaf of statistics imported from an older database (a journal line)."""
        path = record.get("path")
        if not (isinstance(path, list) and len(path) == self.layout.depth):
            raise ValueError(f"imported leaf without a {self.layout.depth}-part path")
        cell = (self.names.normalize(str(path[0])), *(str(p) for p in path[1:]))
        vector = vector_from_fields(record.get("stats") or {}, self.layout)
        self._apply(cell, tuple(vector))
        source = str(record.get("source", "")), str(record.get("imported_at", ""))
        entry = self._imports.setdefault(
            source,
            {
                "source": source[0],
                "from_version": str(record.get("from_version", "")),
                "imported_at": source[1],
                "leaves": 0,
                "total": 0,
            },
        )
        entry["leaves"] += 1
        entry["total"] += vector[TOTAL]

    def snapshot(self) -> Snapshot:
        """Copy what changed since the last snapshot (cheap: only touched nodes are copied)."""
        nodes = self.nodes
        snap = Snapshot(
            {path: nodes[path] for path in self._changed},
            self._added,
            [dict(entry) for entry in self._imports.values()],
        )
        self._changed = set()
        self._added = []
        return snap

    def full_snapshot(self) -> Snapshot:
        """Every node, as if nothing had been written yet (for a writer starting from scratch)."""
        self._changed = set(self.nodes)
        self._added = sorted(self.nodes, key=len)
        return self.snapshot()

    def _cell(self, result: TestResult) -> NodePath:
        return (result.model, *map(result.labels.__getitem__, self.layout.dimensions))

    def _apply(self, cell: NodePath, delta: Frozen) -> None:
        batch = self._batch
        if batch is not None:
            batch.setdefault(cell, []).append(delta)
            return
        nodes, changed = self.nodes, self._changed
        for depth in range(len(cell) + 1):
            path = cell[:depth]
            frozen = nodes.get(path)
            if frozen is None:
                frozen = (0,) * len(delta)
                self._added.append(path)
            # Immutable tuples of ints: a snapshot can share them, and the collector skips them.
            nodes[path] = _add(frozen, delta)
            changed.add(path)


def result_delta_kind(kind: str, layout: Layout) -> Frozen:
    """The delta of an error record of `kind` (a unit in its counter)."""
    delta = [0] * layout.width
    delta[_ERROR_KIND_INDEX[kind]] = 1
    return tuple(delta)


def _negate(delta: Frozen) -> Frozen:
    return tuple(-x for x in delta)


def _model_of(result: TestResult) -> str | None:
    # item ids are "<model>/<case id>/<instance>"; the case id may contain slashes
    suffix = f"/{result.case_id}/{result.instance}"
    item_id = result.item_id
    return item_id[: -len(suffix)] if item_id.endswith(suffix) else None

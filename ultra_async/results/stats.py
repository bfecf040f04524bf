"""The statistics model (schema 4.0): per-node counters and exact sums, rendered as database fields.

Every node of the database keeps one vector of integers. Sums of per-test values are kept in
fixed point (units of 1/SCALE), so adding them is exact integer arithmetic: the totals, and the
means derived from them, do not depend on the order results arrive in, and a parent is exactly
the sum of its children. Means are computed from these sums only when a node is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import add
from typing import Any

from ..naming import ModelNames
from ..suites.workflow.dimensions import ERROR_CATEGORIES, rate_key
from ..types import TestResult

SCHEMA_VERSION = "4.0"
#: fixed-point unit of every stored sum: 1e-9 is far below any score or timing resolution
SCALE = 10**9

#: the dimensions of a leaf's path, root to leaf
DIMENSIONS: tuple[str, ...] = (
    "model",
    "prompt_type",
    "tool_success_rate",
    "difficulty",
    "task_type",
)
#: the key under which a node at depth d (model = 1) keeps its children
LEVEL_KEYS: tuple[str, ...] = (
    "models",
    "by_prompt_type",
    "by_tool_success_rate",
    "by_difficulty",
    "by_task_type",
)
LEAF_DEPTH = len(DIMENSIONS)

#: (mean field, stored sum field, TestResult attribute); every mean is over `total`
MEANS: tuple[tuple[str, str, str], ...] = (
    ("avg_execution_time", "sum_execution_time", "execution_time_s"),
    ("avg_turns", "sum_turns", "turns"),
    ("avg_tool_calls", "sum_tool_calls", "tool_calls"),
    ("tool_coverage_rate", "sum_tool_coverage_rate", "tool_coverage_rate"),
    ("avg_workflow_score", "sum_workflow_score", "workflow_score"),
    ("avg_phase2_score", "sum_phase2_score", "phase2_score"),
    ("avg_quality_score", "sum_quality_score", "quality_score"),
    ("avg_final_score", "sum_final_score", "final_score"),
)
ERROR_FIELDS: tuple[str, ...] = tuple(f"{c}_errors" for c in ERROR_CATEGORIES)
SHARE_FIELDS: tuple[str, ...] = tuple(f"{c}_error_share" for c in ERROR_CATEGORIES)

# Layout of a node vector. The named counters are the fields stored verbatim in the database.
COUNTER_FIELDS: tuple[str, ...] = (
    "total", "full_success", "partial_success", "failure", "infra_errors",
    "total_input_tokens", "total_output_tokens", *ERROR_FIELDS,
)  # fmt: skip
TOTAL, FULL, PARTIAL, FAILURE, INFRA, IN_TOKENS, OUT_TOKENS = range(7)
ERR0 = 7
SUM0 = len(COUNTER_FIELDS)
WIDTH = SUM0 + len(MEANS)
#: the fields from which a node vector can be rebuilt exactly (sums as floats)
EXACT_FIELDS: tuple[str, ...] = (*COUNTER_FIELDS, *(s for _, s, _ in MEANS))

#: every field of a leaf and of every `overall_stats`, in the order they are written
NODE_FIELDS: tuple[str, ...] = (
    "total",
    "success",
    "full_success",
    "partial_success",
    "failure",
    "infra_errors",
    "success_rate",
    "full_success_rate",
    "partial_success_rate",
    "failure_rate",
    "weighted_success_score",
    *(m for m, _, _ in MEANS),
    "total_input_tokens",
    "total_output_tokens",
    "total_tokens",
    "total_errors",
    *ERROR_FIELDS,
    *SHARE_FIELDS,
    *(s for _, s, _ in MEANS),
)

#: a node's statistics; the tree keeps them as tuples, which the garbage collector skips
Vector = Sequence[int]
Frozen = tuple[int, ...]
_ERROR_INDEX = {c: ERR0 + i for i, c in enumerate(ERROR_CATEGORIES)}
_LEVEL_INDEX = {"full_success": FULL, "partial_success": PARTIAL}


def fixed(value: object) -> int:
    """A value in fixed point; anything that is not a finite number counts as 0."""
    if isinstance(value, int):
        return value * SCALE
    if isinstance(value, float) and math.isfinite(value):
        return round(value * SCALE)
    return 0


def new_vector() -> list[int]:
    """The vector of a node where nothing has happened yet."""
    return [0] * WIDTH


def completed_delta(result: TestResult) -> Frozen:
    """What one completed test adds to every node on its path."""
    delta = new_vector()
    delta[TOTAL] = 1
    delta[_LEVEL_INDEX.get(result.success_level, FAILURE)] = 1
    delta[IN_TOKENS] = int(result.input_tokens or 0)
    delta[OUT_TOKENS] = int(result.output_tokens or 0)
    if result.error_category is not None:
        delta[_ERROR_INDEX.get(result.error_category, _ERROR_INDEX["other"])] = 1
    for i, (_, _, attr) in enumerate(MEANS):
        delta[SUM0 + i] = fixed(getattr(result, attr))
    return tuple(delta)


def _unit(index: int, amount: int) -> Frozen:
    delta = new_vector()
    delta[index] = amount
    return tuple(delta)


INFRA_DELTA = _unit(INFRA, 1)
INFRA_UNDO = _unit(INFRA, -1)


def vector_from_fields(node: Mapping[str, Any]) -> list[int]:
    """The vector behind stored node fields (exact for schema 4.0; missing fields are 0)."""
    vector = new_vector()
    for i, name in enumerate(COUNTER_FIELDS):
        value = node.get(name, 0)
        vector[i] = int(value) if isinstance(value, int | float) else 0
    for i, (_, sum_field, _) in enumerate(MEANS):
        vector[SUM0 + i] = fixed(node.get(sum_field, 0))
    return vector


def _ratio(num: int, den: int) -> float:
    # int / int is correctly rounded in Python, so the result depends only on the integers.
    return num / den if den else 0.0


def node_fields(vector: Vector) -> dict[str, Any]:
    """The database fields of one node (leaf or overall_stats), in NODE_FIELDS order."""
    total, full, partial = vector[TOTAL], vector[FULL], vector[PARTIAL]
    success = full + partial
    errors = vector[ERR0:SUM0]
    total_errors = sum(errors)
    out: dict[str, Any] = {
        "total": total,
        "success": success,
        "full_success": full,
        "partial_success": partial,
        "failure": vector[FAILURE],
        "infra_errors": vector[INFRA],
        "success_rate": _ratio(success, total),
        "full_success_rate": _ratio(full, total),
        "partial_success_rate": _ratio(partial, total),
        "failure_rate": _ratio(vector[FAILURE], total),
        "weighted_success_score": _ratio(2 * full + partial, 2 * total),
    }
    for i, (mean, _, _) in enumerate(MEANS):
        out[mean] = _ratio(vector[SUM0 + i], SCALE * total)
    out["total_input_tokens"] = vector[IN_TOKENS]
    out["total_output_tokens"] = vector[OUT_TOKENS]
    out["total_tokens"] = vector[IN_TOKENS] + vector[OUT_TOKENS]
    out["total_errors"] = total_errors
    for name, count in zip(ERROR_FIELDS, errors, strict=True):
        out[name] = count
    for name, count in zip(SHARE_FIELDS, errors, strict=True):
        out[name] = _ratio(count, total_errors)
    for i, (_, sum_field, _) in enumerate(MEANS):
        out[sum_field] = _ratio(vector[SUM0 + i], SCALE)
    return out


NodePath = tuple[str, ...]
IMPORTED_LEAF = "imported_leaf"
_TEXT_FIELDS = ("item_id", "model", "prompt_type", "difficulty", "task_type")


def invalid_reason(result: TestResult) -> str | None:
    """Why a result cannot be counted (None when it can); checked before it is journaled."""
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(result, name), str) or not getattr(result, name):
            return f"{name} is not a non-empty string"
    rate = result.tool_success_rate
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        return "tool_success_rate is not a number"
    if result.outcome not in ("completed", "infra_error"):
        return f"outcome {result.outcome!r} is neither completed nor infra_error"
    return None


@dataclass(slots=True)
class Snapshot:
    """Copies of the nodes changed since the previous snapshot: safe to hand to another thread."""

    changed: dict[NodePath, Frozen]
    added: list[NodePath]
    imports: list[dict[str, Any]]


class StatsTree:
    """All statistics in memory. Each work item counts once, by its latest record.

    A completed record is final: later records for the same item are duplicates and change
    nothing. An infra error counts in `infra_errors` only while it is the item's latest record,
    so a successful retry moves the item from `infra_errors` into `total`; the statistics
    therefore depend on which items ended how, not on how many attempts or crashes it took.
    """

    def __init__(self, names: ModelNames | None = None) -> None:
        self.names = names or ModelNames()
        self.nodes: dict[NodePath, Frozen] = {(): _ZERO}
        #: item id -> (completed?, leaf path)
        self._items: dict[str, tuple[bool, NodePath]] = {}
        self._imports: dict[tuple[str, str], dict[str, Any]] = {}
        self._changed: set[NodePath] = {()}
        self._added: list[NodePath] = [()]
        #: while `add_results` runs: each leaf's summed delta, applied once at the end
        self._batch: dict[NodePath, list[Frozen]] | None = None

    def normalize(self, result: TestResult) -> TestResult:
        """The result with its real model name (the same object when it is already real)."""
        # The item id starts with the model the work item was planned for; it resolves
        # instance names that several models share (`qwen-key1`).
        hint = result.item_id.rsplit("/", 5)[0] if result.item_id.count("/") >= 5 else None
        model = self.names.normalize(result.model, model_hint=hint)
        return result if model == result.model else replace(result, model=model)

    def is_done(self, item_id: str) -> bool:
        """True when the item has a completed record."""
        state = self._items.get(item_id)
        return state is not None and state[0]

    def done_ids(self) -> set[str]:
        """Ids of every item with a completed record."""
        return {item_id for item_id, (done, _) in self._items.items() if done}

    def add_result(self, result: TestResult) -> str:
        """Count one record; returns completed, infra_error, infra_repeat or duplicate."""
        previous = self._items.get(result.item_id)
        if previous is not None and previous[0]:
            return "duplicate"
        if result.is_infra_error:
            if previous is not None:
                return "infra_repeat"
            cell = self._cell(self.normalize(result))
            self._items[result.item_id] = (False, cell)
            self._apply(cell, INFRA_DELTA)
            return "infra_error"
        if previous is not None:
            self._apply(previous[1], INFRA_UNDO)
        cell = self._cell(self.normalize(result))
        self._items[result.item_id] = (True, cell)
        self._apply(cell, completed_delta(result))
        return "completed"

    def add_results(self, results: Iterable[TestResult]) -> list[str]:
        """`add_result` for each result in order; each touched leaf's path is updated once."""
        batch: dict[NodePath, list[Frozen]] = {}
        self._batch = batch
        try:
            return [self.add_result(result) for result in results]
        finally:
            self._batch = None
            for cell, deltas in batch.items():
                # integer sums: a batch's deltas added first give exactly the same nodes
                summed = (
                    tuple(map(sum, zip(*deltas, strict=True))) if len(deltas) > 1 else deltas[0]
                )
                self._apply(cell, summed)

    def add_imported(self, record: Mapping[str, Any]) -> None:
        """Add one leaf of statistics imported from an older database (a journal line)."""
        path = record.get("path")
        if not (isinstance(path, list) and len(path) == LEAF_DEPTH):
            raise ValueError("imported leaf without a 5-part path")
        cell = (self.names.normalize(str(path[0])), *(str(p) for p in path[1:]))
        vector = vector_from_fields(record.get("stats") or {})
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
        return (
            result.model,
            result.prompt_type,
            rate_key(result.tool_success_rate),
            result.difficulty,
            result.task_type,
        )

    def _apply(self, cell: NodePath, delta: Frozen) -> None:
        batch = self._batch
        if batch is not None:
            batch.setdefault(cell, []).append(delta)
            return
        nodes, changed = self.nodes, self._changed
        for depth in range(LEAF_DEPTH + 1):
            path = cell[:depth]
            frozen = nodes.get(path)
            if frozen is None:
                frozen = _ZERO
                self._added.append(path)
            # Immutable tuples of ints: a snapshot can share them, and the collector skips them.
            nodes[path] = tuple(map(add, frozen, delta))
            changed.add(path)


_ZERO: Frozen = (0,) * WIDTH

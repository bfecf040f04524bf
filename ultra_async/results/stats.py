"""The statistics tree: which record counts for each item, and every node's vector.

Each work item counts once, by its latest final record; the vectors, their fixed-point sums and
the database fields they render to are in `vectors.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Any

from ..naming import ModelNames
from ..types import TestResult
from .layout import Layout, workflow_layout
from .vectors import (
    DIMENSIONS,
    IMPORTED_LEAF,
    INFRA,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    TOTAL,
    WORKFLOW,
    Frozen,
    NodePath,
    add_vectors,
    negate,
    node_fields,
    result_delta,
    result_delta_kind,
    vector_from_fields,
)

#: the names other modules have always imported from here (they live in `vectors.py`)
__all__ = [
    "DIMENSIONS",
    "FINAL_KINDS",
    "IMPORTED_LEAF",
    "INFRA",
    "REQUIRED_FIELDS",
    "SCHEMA_VERSION",
    "TOTAL",
    "Snapshot",
    "StatsTree",
    "invalid_reason",
    "node_fields",
]


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
            self._apply(previous[1], negate(result_delta(old, self.layout)))
            self._count(result, kind, normalized)
            return "replaced"
        if kind == "infra_error" and previous is not None:
            return "infra_repeat"
        if previous is not None:  # an infra error, now followed by a final record
            self._apply(previous[1], negate(result_delta_kind("infra_error", self.layout)))
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
            nodes[path] = add_vectors(frozen, delta)
            changed.add(path)


def _model_of(result: TestResult) -> str | None:
    # item ids are "<model>/<case id>/<instance>"; the case id may contain slashes
    suffix = f"/{result.case_id}/{result.instance}"
    item_id = result.item_id
    return item_id[: -len(suffix)] if item_id.endswith(suffix) else None

"""The shape of a suite's statistics: its dimensions, and where each counter and sum sits in a node.

Every node of the database keeps one vector of integers. The first `FIXED` entries are the same
for every suite (counts, tokens, the kinds of errors); after them come *slots*, one per error
category and one per summed measure, in the order they were first seen. A suite that declares its
categories, like the workflow benchmark, has all its slots from the start; others gain a slot
the first time an outcome names a new metric or category, so vectors of one tree can differ in
length and are padded with zeros when added.

The workflow suite's layout reproduces schema 4.0 field for field (`tool_coverage_rate` is the
mean of `sum_tool_coverage_rate`, scores are means over `total`); any other suite's measures are
written as `avg_<metric>`, `sum_<metric>`, `n_<metric>` and `sumsq_<metric>`: an outcome may
leave a metric out, so each metric (and `score`) counts the tests that reported it, and its mean
is over those; the sum of squares gives the mean's interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: the fixed counters every node has, stored verbatim in the database
FIXED_COUNTERS: tuple[str, ...] = (
    "total",
    "full_success",
    "partial_success",
    "failure",
    "infra_errors",
    "total_input_tokens",
    "total_output_tokens",
    "request_errors",
    "evaluate_errors",
    "cached_requests",
)
(
    TOTAL,
    FULL,
    PARTIAL,
    FAILURE,
    INFRA,
    IN_TOKENS,
    OUT_TOKENS,
    REQUEST_ERRORS,
    EVALUATE_ERRORS,
    CACHED,
) = range(len(FIXED_COUNTERS))
FIXED = len(FIXED_COUNTERS)
#: counters added in this version of schema 4.0: absent from older files, read as 0 there
ADDED_COUNTERS: frozenset[str] = frozenset({"request_errors", "evaluate_errors", "cached_requests"})
#: the fixed-point unit of every stored sum: 1e-9 is far below any score or timing resolution
SCALE = 10**9
#: the sum a workflow or suite node keeps of each test's wall time, and of its cost
EXECUTION_TIME = "execution_time"
COST = "cost"

WORKFLOW_DIMENSIONS: tuple[str, ...] = (
    "prompt_type",
    "tool_success_rate",
    "difficulty",
    "task_type",
)
WORKFLOW_ERROR_CATEGORIES: tuple[str, ...] = (
    "tool_call_format",
    "timeout",
    "max_turns",
    "tool_selection",
    "parameter_config",
    "sequence_order",
    "dependency",
    "other",
)
#: (measure, mean field, sum field) of the workflow suite, in schema-4.0 order
WORKFLOW_MEASURES: tuple[tuple[str, str, str], ...] = (
    (EXECUTION_TIME, "avg_execution_time", "sum_execution_time"),
    ("turns", "avg_turns", "sum_turns"),
    ("tool_calls", "avg_tool_calls", "sum_tool_calls"),
    ("tool_coverage_rate", "tool_coverage_rate", "sum_tool_coverage_rate"),
    ("workflow_score", "avg_workflow_score", "sum_workflow_score"),
    ("phase2_score", "avg_phase2_score", "sum_phase2_score"),
    ("quality_score", "avg_quality_score", "sum_quality_score"),
    ("final_score", "avg_final_score", "sum_final_score"),
)
_NON_CATEGORY_ERRORS = frozenset(
    {"total_errors", "infra_errors", "request_errors", "evaluate_errors"}
)


@dataclass(slots=True)
class Measure:
    """One summed measure: where it sits in the vector and the fields it renders as.

    A measure without a `mean_field` (cost) renders its sum only. A measure with a
    `count_index` (another suite's metric or score) also counts the tests that reported it, as
    `count_field`, and its mean is over that count instead of `total`.
    """

    name: str
    mean_field: str
    sum_field: str
    index: int
    count_field: str = ""
    count_index: int | None = None
    #: with a count: the sum of the squared values (`sumsq_<m>`), for the mean's interval
    squares_field: str = ""
    squares_index: int | None = None


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """The slots and names a node's fields are rendered from."""

    error_slots: tuple[int, ...]
    error_fields: tuple[str, ...]
    share_fields: tuple[str, ...]
    #: (mean field, sum slot, count slot or None: over `total`)
    means: tuple[tuple[str, int, int | None], ...]
    #: stored sums, then sums of squares (`sumsq_<m>`)
    sums: tuple[tuple[str, int], ...]
    counts: tuple[tuple[str, int], ...]


@dataclass(slots=True)
class Layout:
    """Dimensions and vector slots of one suite's statistics (grows, never shrinks)."""

    suite: str
    dimensions: tuple[str, ...]
    #: declared categories are the only ones allowed; None lets outcomes bring their own
    declared_categories: tuple[str, ...] | None = None
    categories: dict[str, int] = field(default_factory=dict)
    measures: dict[str, Measure] = field(default_factory=dict)
    #: the workflow suite's schema-4.0 fields (no `score`, no sorted rendering)
    workflow: bool = False
    width: int = FIXED
    #: what rendering a node needs, computed once per width (see `render_plan`)
    _plan: RenderPlan | None = field(default=None, repr=False, compare=False)

    @property
    def depth(self) -> int:
        """The depth of a leaf: the model plus one level per dimension."""
        return len(self.dimensions) + 1

    @property
    def level_keys(self) -> tuple[str, ...]:
        """The key under which a node at depth d (model = 1) keeps its children."""
        return ("models", *(f"by_{d}" for d in self.dimensions))

    def category_index(self, category: str) -> int | None:
        """The slot of an error category (a new slot for an open layout; None if not allowed)."""
        index = self.categories.get(category)
        if index is None and self.declared_categories is None:
            index = self.categories[category] = self._grow()
        return index

    def measure_index(self, name: str) -> int:
        """The slot of a summed measure, added the first time it is seen."""
        measure = self.measures.get(name)
        if measure is None:
            measure = Measure(name, f"avg_{name}", f"sum_{name}", self._grow())
            if not self.workflow and name != EXECUTION_TIME:
                # an outcome may leave a metric out: its mean is over the tests that gave it
                measure.count_field, measure.count_index = f"n_{name}", self._grow()
                measure.squares_field, measure.squares_index = f"sumsq_{name}", self._grow()
            self.measures[name] = measure
        return measure.index

    def _grow(self) -> int:
        self.width += 1
        self._plan = None
        return self.width - 1

    def render_plan(self) -> RenderPlan:
        """Field names and vector slots of a rendered node, in order (cached until it grows)."""
        plan = self._plan
        if plan is None:
            categories = self.error_categories()
            measures = self.rendered_measures()
            plan = self._plan = RenderPlan(
                tuple(self.categories[c] for c in categories),
                tuple(f"{c}_errors" for c in categories),
                tuple(f"{c}_error_share" for c in categories),
                tuple((m.mean_field, m.index, m.count_index) for m in measures if m.mean_field),
                tuple((m.sum_field, m.index) for m in measures)
                + tuple(
                    (m.squares_field, m.squares_index)
                    for m in measures
                    if m.squares_index is not None
                ),
                tuple(
                    (m.count_field, m.count_index) for m in measures if m.count_index is not None
                ),
            )
        return plan

    def error_categories(self) -> list[str]:
        """Categories in rendering order: declared order, else sorted."""
        if self.declared_categories is not None or self.workflow:
            return list(self.categories)
        return sorted(self.categories)

    def rendered_measures(self) -> list[Measure]:
        """Measures in rendering order: schema order for the workflow, else by name."""
        if self.workflow:
            return list(self.measures.values())
        return sorted(self.measures.values(), key=lambda m: m.name)

    def header(self) -> dict[str, Any]:
        """What the journal's first line and the database's root say about the suite."""
        return {
            "suite": self.suite,
            "dimensions": list(self.dimensions),
            "error_categories": (
                list(self.declared_categories) if self.declared_categories is not None else None
            ),
        }


def workflow_layout() -> Layout:
    """The layout of the built-in workflow benchmark (schema 4.0 exactly)."""
    layout = Layout(
        "workflow",
        WORKFLOW_DIMENSIONS,
        declared_categories=WORKFLOW_ERROR_CATEGORIES,
        workflow=True,
    )
    for category in WORKFLOW_ERROR_CATEGORIES:
        layout.categories[category] = layout._grow()
    for name, mean, total in WORKFLOW_MEASURES:
        layout.measures[name] = Measure(name, mean, total, layout._grow())
    layout.measures[COST] = Measure(COST, "", "total_cost", layout._grow())
    return layout


def suite_layout(
    suite: str, dimensions: Sequence[str], error_categories: Iterable[str] | None = None
) -> Layout:
    """The layout of any suite: `workflow` gets schema 4.0, others `avg_<m>`/`sum_<m>` fields."""
    if suite == "workflow" and tuple(dimensions) == WORKFLOW_DIMENSIONS:
        return workflow_layout()
    declared = tuple(error_categories) if error_categories is not None else None
    layout = Layout(suite, tuple(dimensions), declared_categories=declared)
    for category in declared or ():
        layout.categories[category] = layout._grow()
    layout.measure_index(EXECUTION_TIME)
    layout.measures[COST] = Measure(COST, "", "total_cost", layout._grow())
    return layout


def layout_from_header(header: Mapping[str, Any] | None) -> Layout:
    """The layout a journal header (or a database root) names; none means the workflow suite."""
    if not header or not header.get("dimensions"):
        return workflow_layout()
    categories = header.get("error_categories")
    return suite_layout(
        str(header.get("suite") or "suite"),
        [str(d) for d in header["dimensions"]],
        [str(c) for c in categories] if isinstance(categories, list) else None,
    )


def layout_of_database(db: Mapping[str, Any]) -> Layout:
    """The layout of a database document: its root's suite and dimensions, its nodes' fields."""
    layout = layout_from_header(db)
    if layout.workflow:
        return layout
    stats = db.get("overall_stats")
    for key in stats if isinstance(stats, Mapping) else ():
        if key.startswith("sum_") and key != "sum_execution_time":
            layout.measure_index(key[4:])
        elif key.endswith("_errors") and key not in _NON_CATEGORY_ERRORS:
            layout.category_index(key[: -len("_errors")])
    return layout

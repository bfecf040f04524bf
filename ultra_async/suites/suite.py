"""A suite: what is evaluated (cases with labels), how one case is scored, how it is simulated."""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError
from ..types import SUCCESS_LEVELS, Case, ChatFn, Outcome

#: the coroutine that runs and scores one case
SuiteEvaluate = Callable[[Case, ChatFn], Awaitable[Outcome]]
#: the simulated model's reply for a case: (case, model, rng) → text
Simulate = Callable[[Case, str, random.Random], str]
#: a whole-conversation simulated model: (model, messages, request body) → text
Responder = Callable[[str, list[dict[str, Any]], dict[str, Any]], str]

#: a suite's name, a dimension's name: what can stand in a path and a field name
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclass(frozen=True)
class Suite:
    """What to evaluate: cases with a value per dimension, an `evaluate` coroutine, a simulation.

    `cases` is an iterable of Case or a function returning one (called once per run).
    `simulate(case, model, rng)` is the reply the embedded simulator gives for that case, so the
    suite runs with no API keys. `error_categories`, when given, are the only categories an
    outcome may name.
    """

    name: str
    dimensions: Sequence[str]
    cases: Iterable[Case] | Callable[[], Iterable[Case]]
    evaluate: SuiteEvaluate
    simulate: Simulate | None = None
    error_categories: Sequence[str] | None = None
    #: a simulated model that reads the whole conversation, given the run's seed (advanced)
    responder: Callable[[int], Responder] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= _NAME_CHARS:
            raise PlanError(f"suite name {self.name!r}: use letters, digits, '_', '-', '.'")
        dims = list(self.dimensions)
        if isinstance(self.dimensions, str):
            raise PlanError(f"suite {self.name}: dimensions must be a list of names, not a string")
        for dim in dims:
            if not isinstance(dim, str) or not dim or not set(dim) <= _NAME_CHARS:
                raise PlanError(f"suite {self.name}: dimension {dim!r} is not a plain name")
        if len(set(dims)) != len(dims):
            raise PlanError(f"suite {self.name}: dimensions repeat a name")
        if "model" in dims:
            raise PlanError(
                f"suite {self.name}: 'model' is always the first level; not a dimension"
            )
        if self.error_categories is not None:
            cats = list(self.error_categories)
            if not cats or not all(isinstance(c, str) and c for c in cats):
                raise PlanError(f"suite {self.name}: error_categories must be non-empty names")

    def load_cases(self) -> list[Case]:
        """The cases, checked: unique string ids, a string label for every dimension."""
        source = self.cases() if callable(self.cases) else self.cases
        cases: list[Case] = []
        seen: set[str] = set()
        dims = tuple(self.dimensions)
        for n, case in enumerate(source, 1):
            if not isinstance(case, Case):
                raise PlanError(
                    f"suite {self.name}: case {n} is a {type(case).__name__}, not a Case"
                )
            if not isinstance(case.id, str) or not case.id.strip():
                raise PlanError(f"suite {self.name}: case {n} has no id")
            if case.id in seen:
                raise PlanError(f"suite {self.name}: case id {case.id!r} appears twice")
            seen.add(case.id)
            labels = case.labels
            missing = [d for d in dims if not isinstance(labels.get(d), str) or not labels[d]]
            if missing:
                raise PlanError(
                    f"suite {self.name}: case {case.id!r} has no string label for "
                    f"{', '.join(missing)}"
                )
            cases.append(case if set(labels) == set(dims) else _only(case, dims))
        if not cases:
            raise PlanError(f"suite {self.name}: no cases to evaluate")
        return cases

    def check_outcome(self, outcome: object) -> str | None:
        """Why `outcome` is not a valid outcome of this suite (None when it is)."""
        if not isinstance(outcome, Outcome):
            return f"evaluate returned {type(outcome).__name__}, not an Outcome"
        if outcome.success_level not in SUCCESS_LEVELS:
            return (
                f"success_level {outcome.success_level!r} is not one of {', '.join(SUCCESS_LEVELS)}"
            )
        if outcome.score is not None and not _finite(outcome.score):
            return f"score {outcome.score!r} is not a finite number"
        if type(outcome.metrics) is not dict and not isinstance(outcome.metrics, Mapping):
            return "metrics is not a mapping"
        for name, value in outcome.metrics.items():
            if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
                return f"metric name {name!r} is not a plain name"
            if not _finite(value):
                return f"metric {name} = {value!r} is not a finite number"
        category = outcome.error_category
        if category is not None:
            if not isinstance(category, str) or not category or not set(category) <= _NAME_CHARS:
                return f"error_category {category!r} is not a plain name"
            if self.error_categories is not None and category not in self.error_categories:
                return (
                    f"error_category {category!r} is not one of {', '.join(self.error_categories)}"
                )
        if type(outcome.details) is not dict and not isinstance(outcome.details, Mapping):
            return "details is not a mapping"
        for name in ("input_tokens", "output_tokens"):
            value = getattr(outcome, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"{name} {value!r} is not a whole number >= 0"
        return None

    def simulate_takes_messages(self) -> bool:
        """True when `simulate` also accepts the conversation (`messages=`)."""
        if self.simulate is None:
            return False
        try:
            return "messages" in inspect.signature(self.simulate).parameters
        except (TypeError, ValueError):
            return False


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _only(case: Case, dims: tuple[str, ...]) -> Case:
    # labels beyond the suite's dimensions are dropped: the database has a level per dimension
    return Case(case.id, {d: case.labels[d] for d in dims}, case.data)

"""The workflow benchmark as a suite: its matrix options become cases, its executor evaluates."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import product
from typing import Any

from ...config import Config
from ...errors import PlanError
from ...planner import Matrix, build_matrix, choose
from ...types import Case
from ..suite import Responder, Suite
from .dimensions import (
    DEFAULT_DIFFICULTY,
    DEFAULT_TOOL_SUCCESS_RATE,
    DIFFICULTIES,
    ERROR_CATEGORIES,
    PROMPT_TYPE_GROUPS,
    PROMPT_TYPES,
    TASK_TYPES,
)
from .executor import make_evaluate
from .item import DIMENSIONS, workflow_case

#: the options that choose the workflow matrix, spelled as the CLI flags and RunOptions fields
MATRIX_OPTIONS = ("prompt_types", "rates", "difficulties", "task_types")


def _split(value: str | Iterable[Any]) -> list[Any]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() if isinstance(p, str) else p for p in parts if p != "" and p is not None]


def parse_prompt_types(value: str | Iterable[str]) -> tuple[str, ...]:
    """`optimal,cot`, or a group: `all` (baseline, cot, optimal), `all_with_flawed`, `flawed`."""
    chosen: list[str] = []
    for part in _split(value):
        if part in PROMPT_TYPE_GROUPS:
            chosen.extend(PROMPT_TYPE_GROUPS[part])
        elif part in PROMPT_TYPES:
            chosen.append(part)
        else:
            groups = ", ".join(PROMPT_TYPE_GROUPS)
            raise PlanError(
                f"unknown prompt type {part!r}; choose from: {groups}, {', '.join(PROMPT_TYPES)}"
            )
    if not chosen:
        raise PlanError("no prompt type given")
    return tuple(dict.fromkeys(chosen))


def parse_rates(value: str | Iterable[str | float]) -> tuple[float, ...]:
    """Tool success rates from a comma list, each in (0, 1]."""
    rates: list[float] = []
    for part in _split(value):
        try:
            rate = float(part)
        except (TypeError, ValueError):
            raise PlanError(f"tool success rate {part!r} is not a number; use e.g. 0.8") from None
        if not 0.0 < rate <= 1.0:
            raise PlanError(f"tool success rate {rate:g} must be in (0, 1]")
        rates.append(rate)
    if not rates:
        raise PlanError("no tool success rate given; use e.g. 0.8")
    return tuple(dict.fromkeys(rates))


def workflow_cases(
    *,
    prompt_types: str | Iterable[str] = "optimal",
    rates: str | Iterable[str | float] = (DEFAULT_TOOL_SUCCESS_RATE,),
    difficulties: str | Iterable[str] = DEFAULT_DIFFICULTY,
    task_types: str | Iterable[str] = "all",
) -> list[Case]:
    """The cases of the workflow matrix, validated (PlanError names a bad value)."""
    return [
        workflow_case(prompt, rate, difficulty, task)
        for prompt, rate, difficulty, task in product(
            parse_prompt_types(prompt_types),
            parse_rates(rates),
            choose("difficulty", difficulties, DIFFICULTIES),
            choose("task type", task_types, TASK_TYPES),
        )
    ]


def _brain(seed: int) -> Responder:
    # imported when a simulated run starts: the simulator imports this package too
    from ...sim.responders import brain_responder

    return brain_responder(seed)


def workflow_suite(
    *,
    prompt_types: str | Iterable[str] = "optimal",
    rates: str | Iterable[str | float] = (DEFAULT_TOOL_SUCCESS_RATE,),
    difficulties: str | Iterable[str] = DEFAULT_DIFFICULTY,
    task_types: str | Iterable[str] = "all",
    seed: int = 0,
) -> Suite:
    """The built-in tool-use workflow benchmark over the chosen matrix (SPEC §4a)."""
    cases = workflow_cases(
        prompt_types=prompt_types, rates=rates, difficulties=difficulties, task_types=task_types
    )
    return Suite(
        "workflow",
        DIMENSIONS,
        cases,
        make_evaluate(seed),
        error_categories=ERROR_CATEGORIES,
        responder=_brain,
    )


def workflow_matrix(
    config: Config,
    *,
    models: str | Iterable[str] = "all",
    prompt_types: str | Iterable[str] = "optimal",
    rates: str | Iterable[str | float] = (DEFAULT_TOOL_SUCCESS_RATE,),
    difficulties: str | Iterable[str] = DEFAULT_DIFFICULTY,
    task_types: str | Iterable[str] = "all",
    instances: int = 1,
) -> Matrix:
    """The matrix of a workflow run: the chosen cells × models × instances, validated."""
    cases = workflow_cases(
        prompt_types=prompt_types, rates=rates, difficulties=difficulties, task_types=task_types
    )
    return build_matrix(config, cases, models=models, instances=instances)

"""Flaw injection: turn the correct plan into one with a single, undisclosed kind of flaw."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from .tasks import Step
from .tools import Tool, load_tools

FlawFn = Callable[[list[Step], random.Random], tuple[list[Step], str]]

#: where a drifting plan takes the final steps: a different goal than the task's
_DRIFT = {
    "file_writer": "email_sender",
    "report_generator": "chart_renderer",
    "chart_renderer": "report_generator",
    "api_poster": "webhook_sender",
    "webhook_sender": "email_sender",
    "email_sender": "webhook_sender",
    "db_writer": "cache_writer",
    "cache_writer": "db_writer",
    "audit_logger": "job_scheduler",
    "job_scheduler": "audit_logger",
    "file_mover": "file_deleter",
    "statistics_calculator": "anomaly_detector",
    "data_aggregator": "data_sorter",
    "trend_forecaster": "statistics_calculator",
}
#: operations that look useful in any pipeline; added only to plans that do not need them
_REDUNDANT = (
    "data_validator",
    "deduplicator",
    "data_sorter",
    "checksum_calculator",
    "statistics_calculator",
    "audit_logger",
    "cache_writer",
)
#: plausible wrong names for a parameter (what a careless plan writer would type)
_RENAMES = {"path": "filepath", "url": "endpoint", "key": "id", "query": "sql", "to": "recipient"}


def _step(name: str) -> Step:
    return Step(name, load_tools()[name].example_params())


def _others(steps: Sequence[Step], pool: Sequence[Tool]) -> list[Tool]:
    used = {s.tool for s in steps}
    return [t for t in pool if t.name not in used]


def sequence_disorder(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Swap two steps; half the time a step and the one it depends on, where the order matters."""
    tools = load_tools()
    pairs = [
        (i, j)
        for j in range(len(steps))
        for i in range(j)
        if steps[i].tool in tools[steps[j].tool].dependencies
    ]
    if pairs and rng.random() < 0.5:
        i, j = rng.choice(pairs)
    else:
        i, j = sorted(rng.sample(range(len(steps)), 2))
    out = list(steps)
    out[i], out[j] = out[j], out[i]
    return out, f"swapped steps {i + 1} and {j + 1}"


def tool_misuse(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Replace one step's tool with a same-category look-alike that the task does not need."""
    tools = load_tools()
    i = rng.randrange(len(steps))
    category = tools[steps[i].tool].category
    pool = _others(steps, [t for t in tools.values() if t.category == category])
    wrong = rng.choice(pool or _others(steps, list(tools.values())))
    out = list(steps)
    out[i] = _step(wrong.name)
    return out, f"step {i + 1}: {steps[i].tool} -> {wrong.name}"


def _bad_value(value: Any) -> Any:
    # a value of the wrong JSON type, the way a sloppy plan mixes up types
    return "yes" if isinstance(value, bool) else 0 if isinstance(value, str) else str(value)


def parameter_error(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Corrupt one required parameter of one step: a wrong name or a wrong type."""
    i = rng.choice([k for k, s in enumerate(steps) if s.params])
    params = dict(steps[i].params)
    name = rng.choice(sorted(params))
    if rng.random() < 0.5:
        wrong = _RENAMES.get(name, f"{name}_name")
        params[wrong] = params.pop(name)
        note = f"step {i + 1}: parameter {name} renamed {wrong}"
    else:
        params[name] = _bad_value(params[name])
        note = f"step {i + 1}: parameter {name} has the wrong type"
    out = list(steps)
    out[i] = Step(steps[i].tool, params)
    return out, note


def missing_step(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Leave out one step."""
    i = rng.randrange(len(steps))
    return steps[:i] + steps[i + 1 :], f"removed step {i + 1} ({steps[i].tool})"


def redundant_operations(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Add operations the task does not need (two for plans of five or more steps).

    Extra checks, sorts and logs look harmless; they cost turns and calls, and can fail.
    """
    pool = [name for name in _REDUNDANT if name not in {s.tool for s in steps}]
    out = list(steps)
    added: list[str] = []
    for name in rng.sample(pool, 2 if len(steps) >= 5 else 1):
        at = rng.randint(1, len(out))
        out.insert(at, _step(name))
        added.append(f"{name} at step {at + 1}")
    return out, "added " + ", ".join(added)


def logical_inconsistency(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Insert a step that reverses an earlier one (or wipes intermediate results) mid-plan."""
    tools = load_tools()
    used = {s.tool for s in steps}
    # tools that reverse exactly one named tool, keyed by the tool they reverse
    undo = {
        t.undoes[0]: t.name for t in tools.values() if len(t.undoes) == 1 and t.undoes[0] != "*"
    }
    undoable = [k for k, s in enumerate(steps) if undo.get(s.tool, "") not in {"", *used}]
    if undoable:
        i = rng.choice(undoable)
        extra = undo[steps[i].tool]
    else:
        i = rng.randrange(len(steps) - 1)
        extra = "workspace_cleaner"
    out = [*steps[: i + 1], _step(extra), *steps[i + 1 :]]
    return out, f"inserted {extra} after step {i + 1}"


def semantic_drift(steps: list[Step], rng: random.Random) -> tuple[list[Step], str]:
    """Let the plan's goal drift: the last step (two for long plans) serves a different purpose."""
    tools = load_tools()
    count = 2 if len(steps) >= 5 else 1
    out = list(steps)
    changed: list[str] = []
    for k in range(len(steps) - count, len(steps)):
        name = steps[k].tool
        target = _DRIFT.get(name)
        if target is None or target in {s.tool for s in out}:
            category = tools[name].category
            pool = _others(out, [t for t in tools.values() if t.category != category])
            target = rng.choice(pool).name
        out[k] = _step(target)
        changed.append(f"{name} -> {target}")
    return out, "drifted " + ", ".join(changed)


FLAWS: dict[str, FlawFn] = {
    "flawed_sequence_disorder": sequence_disorder,
    "flawed_tool_misuse": tool_misuse,
    "flawed_parameter_error": parameter_error,
    "flawed_missing_step": missing_step,
    "flawed_redundant_operations": redundant_operations,
    "flawed_logical_inconsistency": logical_inconsistency,
    "flawed_semantic_drift": semantic_drift,
}


def inject_flaw(steps: Sequence[Step], prompt_type: str, seed: int) -> tuple[list[Step], str]:
    """The plan with the flaw of `prompt_type` injected, and a short note of what changed."""
    return FLAWS[prompt_type](list(steps), random.Random(seed))

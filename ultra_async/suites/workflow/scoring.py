"""Scoring of one test from its trace: the scores, the success level and the error category.

Every formula here is documented in docs/benchmark.md; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .tools import INVALID_PARAMETERS

FULL_THRESHOLD = 0.8
PARTIAL_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Call:
    """One attempted tool call and how it ended."""

    tool: str
    ok: bool
    code: str | None = None
    #: dependencies of the tool not yet run successfully when it was called
    unmet_dependencies: int = 0
    #: tools whose effect this (successful) call reversed
    undone: tuple[str, ...] = ()


@dataclass(slots=True)
class Trace:
    """What happened in one test, as far as scoring needs to know."""

    required: tuple[str, ...]
    calls: list[Call] = field(default_factory=list)
    turns: int = 0
    max_turns: int = 10
    #: the model said TASK_COMPLETED
    completed: bool = False
    #: why the conversation ended: completed, max_turns, format_errors, repeated_failures, timeout
    stop: str = "completed"
    format_errors: int = 0


@dataclass(frozen=True, slots=True)
class Scores:
    """Every component score of a test, and the verdicts derived from them."""

    coverage: float
    sequence_match: float
    success_rate: float
    exact_sequence: bool
    workflow_score: float
    task_achievement: float
    execution_quality: float
    phase2_score: float
    success_level: str
    error_category: str | None


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of `a` and `b`."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def executed_sequence(calls: Sequence[Call]) -> list[str]:
    """The tools called, in order, with retries (a repeat right after a failure) folded in."""
    sequence: list[str] = []
    previous: Call | None = None
    for call in calls:
        if not (previous is not None and previous.tool == call.tool and not previous.ok):
            sequence.append(call.tool)
        previous = call
    return sequence


def in_effect(calls: Sequence[Call]) -> set[str]:
    """The tools whose successful result still stands at the end (undo steps remove results)."""
    standing: set[str] = set()
    for call in calls:
        if call.ok:
            standing -= set(call.undone)
            standing.add(call.tool)
    return standing


def _efficiency(trace: Trace) -> float:
    # one reply per required tool plus TASK_COMPLETED is the budget of a careful model
    ideal = min(trace.max_turns, len(trace.required) + 1)
    if trace.turns <= ideal:
        return 1.0
    return max(0.0, 1.0 - (trace.turns - ideal) / (trace.max_turns + 1 - ideal))


def _recovery(calls: Sequence[Call]) -> float:
    failed_first: dict[str, int] = {}
    recovered: set[str] = set()
    for i, call in enumerate(calls):
        if not call.ok:
            failed_first.setdefault(call.tool, i)
        elif call.tool in failed_first:
            recovered.add(call.tool)
    return len(recovered) / len(failed_first) if failed_first else 1.0


def level(workflow: float, phase2: float) -> str:
    """full_success if both scores reach 0.8, partial_success if either reaches 0.5."""
    if workflow >= FULL_THRESHOLD and phase2 >= FULL_THRESHOLD:
        return "full_success"
    if workflow >= PARTIAL_THRESHOLD or phase2 >= PARTIAL_THRESHOLD:
        return "partial_success"
    return "failure"


def categorize(trace: Trace, coverage: float) -> str:
    """The one error category of a test that was not a full success (first rule that matches)."""
    required = set(trace.required)
    called = [c.tool for c in trace.calls]
    if trace.stop == "timeout":
        return "timeout"
    if trace.stop == "format_errors" or (not called and trace.format_errors > 0):
        return "tool_call_format"
    if trace.stop == "max_turns":
        return "max_turns"
    if coverage < 1.0 or any(tool not in required for tool in called):
        return "tool_selection"
    if any(c.code == INVALID_PARAMETERS for c in trace.calls):
        return "parameter_config"
    if [t for t in executed_sequence(trace.calls) if t in required] != list(trace.required):
        return "sequence_order"
    if any(c.unmet_dependencies > 0 for c in trace.calls):
        return "dependency"
    return "other"


def score(trace: Trace) -> Scores:
    """Score a trace as SPEC §4 and docs/benchmark.md define."""
    required = list(trace.required)
    unique_required = set(required)
    calls = trace.calls
    executed = executed_sequence(calls)
    called = {c.tool for c in calls}
    standing = in_effect(calls)

    coverage = len(unique_required & called) / len(unique_required)
    sequence_match = lcs_length(required, executed) / len(required)
    success_rate = sum(c.ok for c in calls) / len(calls) if calls else 0.0
    exact = executed == required
    workflow = 0.4 * coverage + 0.3 * sequence_match + 0.2 * success_rate + 0.1 * exact

    success_coverage = len(unique_required & standing) / len(unique_required)
    output_produced = 1.0 if required[-1] in standing else 0.0
    achievement = 0.6 * success_coverage + 0.4 * output_produced
    if calls:
        adherence = lcs_length(required, executed) / max(len(required), len(executed))
        quality = (
            0.3 * success_rate
            + 0.25 * _efficiency(trace)
            + 0.25 * adherence
            + 0.2 * _recovery(calls)
        )
    else:
        quality = 0.0
    phase2 = 0.5 * achievement + 0.5 * quality

    # rounding first keeps 0.8 from landing at 0.7999999 and failing the threshold
    workflow, phase2 = round(workflow, 6), round(phase2, 6)
    success_level = level(workflow, phase2)
    category = None if success_level == "full_success" else categorize(trace, coverage)
    return Scores(
        coverage=round(coverage, 6),
        sequence_match=round(sequence_match, 6),
        success_rate=round(success_rate, 6),
        exact_sequence=exact,
        workflow_score=workflow,
        task_achievement=round(achievement, 6),
        execution_quality=round(quality, 6),
        phase2_score=phase2,
        success_level=success_level,
        error_category=category,
    )

"""Prompts per prompt type, and flaw injection: deterministic, undisclosed, and a real change."""

from __future__ import annotations

from collections import Counter

import pytest

from ultra_async.errors import PlanError
from ultra_async.suites.workflow.dimensions import FLAWED_PROMPT_TYPES, PROMPT_TYPES
from ultra_async.suites.workflow.flaws import FLAWS, inject_flaw
from ultra_async.suites.workflow.prompts import build_prompt, parse_plan, render_plan
from ultra_async.suites.workflow.tasks import Step, Task, load_tasks
from ultra_async.suites.workflow.tools import load_tools

TASKS = load_tasks()
LONG = next(t for t in TASKS if len(t.required_tools) == 7)


def _user(task: Task, prompt_type: str, seed: int = 0) -> str:
    return str(build_prompt(task, prompt_type, flaw_seed=seed).messages[1]["content"])


def test_every_prompt_type_has_system_and_task() -> None:
    for prompt_type in PROMPT_TYPES:
        prompt = build_prompt(LONG, prompt_type)
        system, user = (m["content"] for m in prompt.messages)
        assert "<tool_search>" in system and "TASK_COMPLETED" in system
        assert user.startswith(f"Task: {LONG.description}")


def test_baseline_shows_no_tools_and_asks_for_search() -> None:
    user = _user(LONG, "baseline")
    assert "<tool_search>" in user
    assert not any(name in user for name in load_tools())
    assert build_prompt(LONG, "baseline").plan is None


def test_cot_lists_every_tool_and_scaffolds_thinking() -> None:
    user = _user(LONG, "cot")
    assert "step by step" in user
    assert all(f"- {name} (" in user for name in load_tools())
    assert build_prompt(LONG, "cot").plan is None


def test_optimal_shows_the_correct_plan() -> None:
    prompt = build_prompt(LONG, "optimal")
    assert prompt.plan == tuple(LONG.steps())
    assert parse_plan(_user(LONG, "optimal")) == LONG.steps()
    assert prompt.flaw is None


@pytest.mark.parametrize("prompt_type", FLAWED_PROMPT_TYPES)
def test_flaws_are_deterministic_and_change_the_plan(prompt_type: str) -> None:
    for task in TASKS:
        correct = task.steps()
        first, note = inject_flaw(correct, prompt_type, seed=11)
        again, note_again = inject_flaw(correct, prompt_type, seed=11)
        assert (first, note) == (again, note_again)
        assert first != correct, (prompt_type, task.id)
        # undisclosed: the prompt reads like the optimal one, with the flawed plan in it
        user = _user(task, prompt_type, seed=11)
        assert "flaw" not in user.lower() and note not in user
        assert parse_plan(user) == first


def test_different_seeds_give_different_flaws() -> None:
    plans = {str(inject_flaw(LONG.steps(), "flawed_sequence_disorder", s)[0]) for s in range(20)}
    assert len(plans) > 1


def _tools(steps: list[Step]) -> list[str]:
    return [s.tool for s in steps]


def test_each_flaw_has_its_kind() -> None:
    tools = load_tools()
    for task in TASKS:
        correct = task.steps()
        names = _tools(correct)
        disorder, _ = inject_flaw(correct, "flawed_sequence_disorder", 3)
        assert Counter(_tools(disorder)) == Counter(names) and _tools(disorder) != names

        misuse, _ = inject_flaw(correct, "flawed_tool_misuse", 3)
        changed = [(a, b) for a, b in zip(names, _tools(misuse), strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1] not in names

        bad, _ = inject_flaw(correct, "flawed_parameter_error", 3)
        assert _tools(bad) == names
        assert any(tools[s.tool].check_params(s.params) for s in bad)

        missing, _ = inject_flaw(correct, "flawed_missing_step", 3)
        assert len(missing) == len(correct) - 1 and set(_tools(missing)) < set(names)

        extra, _ = inject_flaw(correct, "flawed_redundant_operations", 3)
        added = [n for n in _tools(extra) if n not in names]
        assert added and [n for n in _tools(extra) if n in names] == names

        contradiction, _ = inject_flaw(correct, "flawed_logical_inconsistency", 3)
        inserted = [n for n in _tools(contradiction) if n not in names]
        assert len(inserted) == 1 and tools[inserted[0]].undoes

        drift, _ = inject_flaw(correct, "flawed_semantic_drift", 3)
        assert len(drift) == len(correct) and drift[-1].tool != names[-1]


def test_every_flaw_type_is_covered() -> None:
    assert set(FLAWS) == set(FLAWED_PROMPT_TYPES)


def test_plan_roundtrip_keeps_parameters() -> None:
    steps = [Step("data_transformer", {"mapping": {"a": "b"}}), Step("file_reader", {})]
    assert parse_plan(f"Recommended plan:\n{render_plan(steps)}\n\nGo.") == steps


def test_unknown_prompt_type() -> None:
    with pytest.raises(PlanError, match="prompt type"):
        build_prompt(LONG, "flawed_everything")

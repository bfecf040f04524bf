"""Run one benchmark test: the multi-turn conversation, simulated tools, and the scored outcome."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ...types import ChatFn, Outcome, WorkItem
from .item import WorkflowItem
from .prompts import MAX_TURNS, build_prompt
from .protocol import (
    FORMAT_HELP,
    Action,
    feedback_message,
    info_feedback,
    parse_reply,
    result_feedback,
    search_feedback,
)
from .scoring import Call, Trace, score
from .search import default_index
from .tasks import Task, select_task
from .tools import INVALID_PARAMETERS, UNKNOWN_TOOL, load_tools, simulate_call

#: the test stops after this many replies in a row without a valid action
MAX_FORMAT_ERRORS_IN_A_ROW = 3
#: …or after this many failed calls in a row of the same tool
MAX_SAME_FAILURES_IN_A_ROW = 3
#: model-side time a test may take (summed reply latency) before it counts as a timeout
MODEL_TIME_BUDGET_S = 300.0


def flaw_seed(item: WorkflowItem, run_seed: int) -> int:
    """The seed of a flawed plan: without model and rate, so all of them see the same flaw."""
    return dataclasses.replace(item, model="", tool_success_rate=0.0).seed_with(run_seed)


class _Tools:
    """The simulated tool environment of one test: search, info and seeded execution."""

    def __init__(self, tool_success_rate: float, rng: random.Random, trace: Trace) -> None:
        self._tools = load_tools()
        self._rate = tool_success_rate
        self._rng = rng
        self._trace = trace
        self._succeeded: set[str] = set()
        self.searches = 0
        self.infos = 0

    def handle(self, action: Action) -> str:
        """Carry out one action and return its feedback block."""
        if action.kind == "search":
            self.searches += 1
            return search_feedback(action.target, default_index().search(action.target))
        if action.kind == "info":
            self.infos += 1
            return info_feedback(action.target, self._tools.get(action.target))
        return self._call(action)

    def _call(self, action: Action) -> str:
        name = action.target
        tool = self._tools.get(name)
        if tool is None:
            self._trace.calls.append(Call(name, ok=False, code=UNKNOWN_TOOL))
            return result_feedback(
                name, ok=False, code=UNKNOWN_TOOL, detail="no such tool; use <tool_search>"
            )
        problem = tool.check_params(action.params)
        if problem is not None:
            unmet = sum(dep not in self._succeeded for dep in tool.dependencies)
            self._trace.calls.append(Call(name, False, INVALID_PARAMETERS, unmet))
            detail = f"{problem}; expected parameters: {tool.signature()}"
            return result_feedback(name, ok=False, code=INVALID_PARAMETERS, detail=detail)
        outcome = simulate_call(tool, self._rate, self._succeeded, self._rng)
        undone = tool.reverts(self._succeeded) if outcome.ok else set()
        call = Call(
            name, outcome.ok, outcome.error, outcome.unmet_dependencies, tuple(sorted(undone))
        )
        self._trace.calls.append(call)
        if outcome.ok:
            # a reversed result no longer satisfies the dependencies of later tools
            self._succeeded -= undone
            self._succeeded.add(name)
            detail = f"produced {tool.output}"
            if undone:
                detail += f"; this reversed the results of {', '.join(sorted(undone))}"
            return result_feedback(name, ok=True, detail=detail)
        detail = f"{name} failed"
        missing = [dep for dep in tool.dependencies if dep not in self._succeeded]
        if missing:
            detail += f"; it depends on {', '.join(missing)}, which has not run successfully"
        return result_feedback(name, ok=False, code=outcome.error, detail=detail)

    def failing_in_a_row(self) -> bool:
        """The same tool failed on each of the last few calls."""
        last = self._trace.calls[-MAX_SAME_FAILURES_IN_A_ROW:]
        return (
            len(last) == MAX_SAME_FAILURES_IN_A_ROW
            and len({c.tool for c in last}) == 1
            and not any(c.ok for c in last)
        )


def _details(task: Task, trace: Trace, tools: _Tools, flaw: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "task_id": task.id,
        "required": list(task.required_tools),
        "executed": [c.tool for c in trace.calls],
        "outcomes": "".join("S" if c.ok else "F" for c in trace.calls),
        "errors": dict(Counter(c.code for c in trace.calls if c.code)),
        "stop": trace.stop,
        "assisted_turns": trace.format_errors,
        "searches": tools.searches,
        "infos": tools.infos,
    }
    if flaw is not None:
        details["flaw"] = flaw
    return details


async def evaluate(
    item: WorkflowItem | WorkItem,
    chat: ChatFn,
    *,
    run_seed: int = 0,
    send_seed: bool = True,
    max_turns: int = MAX_TURNS,
    model_time_budget_s: float = MODEL_TIME_BUDGET_S,
) -> Outcome:
    """Run one test of the built-in benchmark against `chat` and score it.

    `InfraError` from `chat` propagates: an API that keeps failing is not a model failure.
    With `send_seed`, the item's seed goes to the API as the `seed` parameter (OpenAI-style),
    so a seeded model or the simulator replays the same conversation.
    """
    if isinstance(item, WorkItem):
        item = WorkflowItem.of(item)
    task = select_task(item, run_seed)
    seed = item.seed_with(run_seed)
    prompt = build_prompt(
        task, item.prompt_type, flaw_seed=flaw_seed(item, run_seed), max_turns=max_turns
    )
    trace = Trace(required=task.required_tools, max_turns=max_turns, stop="max_turns")
    tools = _Tools(item.tool_success_rate, random.Random(seed), trace)
    params: dict[str, Any] = {"seed": seed % 2**31} if send_seed else {}
    messages: list[dict[str, Any]] = [dict(m) for m in prompt.messages]
    input_tokens = output_tokens = 0
    model_time_s = 0.0
    format_errors_in_a_row = 0

    for turn in range(1, max_turns + 1):
        response = await chat(messages, **params)
        trace.turns = turn
        input_tokens += response.input_tokens
        output_tokens += response.output_tokens
        model_time_s += response.latency_s
        messages.append({"role": "assistant", "content": response.content})

        reply = parse_reply(response.content)
        blocks = [tools.handle(action) for action in reply.actions]
        blocks += [f"PROBLEM: {problem}" for problem in reply.problems]
        if reply.completed:
            trace.completed, trace.stop = True, "completed"
            break
        if reply.actions:
            format_errors_in_a_row = 0
        else:
            trace.format_errors += 1
            format_errors_in_a_row += 1
            blocks.append(FORMAT_HELP)
        if model_time_s > model_time_budget_s:
            trace.stop = "timeout"
            break
        if format_errors_in_a_row >= MAX_FORMAT_ERRORS_IN_A_ROW:
            trace.stop = "format_errors"
            break
        if tools.failing_in_a_row():
            trace.stop = "repeated_failures"
            break
        messages.append({"role": "user", "content": feedback_message(blocks, max_turns - turn)})

    scores = score(trace)
    return Outcome(
        success_level=scores.success_level,
        score=scores.phase2_score,
        metrics={
            "turns": trace.turns,
            "tool_calls": len(trace.calls),
            "tool_coverage_rate": scores.coverage,
            "workflow_score": scores.workflow_score,
            "phase2_score": scores.phase2_score,
            "quality_score": scores.execution_quality,
            "final_score": scores.phase2_score,
        },
        error_category=scores.error_category,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        details=_details(task, trace, tools, prompt.flaw),
    )


def make_evaluate(
    run_seed: int = 0,
    *,
    send_seed: bool = True,
    max_turns: int = MAX_TURNS,
    model_time_budget_s: float = MODEL_TIME_BUDGET_S,
) -> Callable[[Any, ChatFn], Awaitable[Outcome]]:
    """`evaluate` bound to a run seed and options: `(case, chat)` as a suite calls it.

    The work item (model, instance, seed) comes from `chat.item`; a WorkflowItem or WorkItem
    passed instead of the case is used as it is (for direct calls in tests and scripts).
    """

    async def bound(case: Any, chat: ChatFn) -> Outcome:
        item = case if isinstance(case, WorkflowItem | WorkItem) else chat.item
        return await evaluate(
            item,
            chat,
            run_seed=run_seed,
            send_seed=send_seed,
            max_turns=max_turns,
            model_time_budget_s=model_time_budget_s,
        )

    return bound

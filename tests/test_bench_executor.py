"""The executor with scripted chat functions: turn loop, stops, feedback, tokens, determinism."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from ultra_async.errors import InfraError
from ultra_async.suites.workflow.executor import evaluate, make_evaluate
from ultra_async.suites.workflow.item import WorkflowItem as WorkItem
from ultra_async.suites.workflow.protocol import parse_feedback
from ultra_async.suites.workflow.tasks import select_task
from ultra_async.types import ChatResponse, Message

ITEM = WorkItem("any-model", "optimal", 0.8, "medium", "data_pipeline", 2)


class Scripted:
    """Replies from a list (the last one repeats); records what it was sent."""

    def __init__(self, *replies: str, latency_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.latency_s = latency_s
        self.seen: list[list[dict[str, Any]]] = []
        self.params: list[dict[str, Any]] = []

    async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
        self.seen.append([dict(m) for m in messages])
        self.params.append(params)
        text = self.replies[min(len(self.seen) - 1, len(self.replies) - 1)]
        return ChatResponse(text, input_tokens=10, output_tokens=5, latency_s=self.latency_s)


class Diligent:
    """Calls the required tools in order with correct parameters, retrying each failure."""

    def __init__(self, item: WorkItem, run_seed: int = 0) -> None:
        self.steps = select_task(item, run_seed).steps()
        self.next = 0

    async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
        if len(messages) > 2:
            result = parse_feedback(str(messages[-1]["content"]))[-1]
            if result.ok:
                self.next += 1
        if self.next == len(self.steps):
            return ChatResponse("TASK_COMPLETED", 100, 3)
        step = self.steps[self.next]
        call = f"<tool_call>{step.tool} {json.dumps(dict(step.params))}</tool_call>"
        return ChatResponse(call, 100, 20)


async def test_a_diligent_model_fully_succeeds() -> None:
    chat = Diligent(ITEM)
    outcome = await evaluate(ITEM, chat)
    task = select_task(ITEM)
    assert outcome.success_level == "full_success"
    assert outcome.error_category is None
    assert outcome.details["task_id"] == task.id
    assert outcome.details["required"] == list(task.required_tools)
    assert outcome.details["stop"] == "completed"
    assert outcome.metrics["tool_coverage_rate"] == 1.0
    assert outcome.metrics["final_score"] == outcome.metrics["phase2_score"]
    # one reply per call plus the completion; tokens summed over all replies
    assert outcome.metrics["turns"] == outcome.metrics["tool_calls"] + 1
    assert outcome.input_tokens == 100 * outcome.metrics["turns"]
    assert outcome.output_tokens == 20 * outcome.metrics["tool_calls"] + 3


async def test_same_item_and_replies_give_the_same_outcome() -> None:
    first = await evaluate(ITEM, Diligent(ITEM, 5), run_seed=5)
    second = await evaluate(ITEM, Diligent(ITEM, 5), run_seed=5)
    assert first == second


async def test_format_errors_get_help_and_stop_the_test() -> None:
    chat = Scripted("I would read the file first.")
    outcome = await evaluate(ITEM, chat)
    assert outcome.metrics["turns"] == 3
    assert outcome.details["assisted_turns"] == 3
    assert outcome.details["stop"] == "format_errors"
    assert outcome.error_category == "tool_call_format"
    assert outcome.success_level == "failure"
    assert "FORMAT HELP" in chat.seen[1][-1]["content"]


async def test_running_out_of_turns() -> None:
    chat = Scripted("<tool_search>read a file</tool_search>")
    outcome = await evaluate(ITEM, chat, max_turns=4)
    assert outcome.metrics["turns"] == 4
    assert outcome.details["searches"] == 4
    assert outcome.error_category == "max_turns"
    assert "SEARCH RESULTS" in chat.seen[1][-1]["content"]


async def test_slow_model_times_out() -> None:
    chat = Scripted("<tool_search>read</tool_search>", latency_s=200.0)
    outcome = await evaluate(ITEM, chat, model_time_budget_s=300.0)
    assert outcome.metrics["turns"] == 2
    assert outcome.details["stop"] == "timeout"
    assert outcome.error_category == "timeout"


async def test_infra_errors_propagate() -> None:
    class Broken:
        async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
            raise InfraError("retries exhausted: 503")

    with pytest.raises(InfraError):
        await evaluate(ITEM, Broken())


async def test_unknown_tools_and_bad_parameters_fail_the_call() -> None:
    chat = Scripted(
        "<tool_call>teleporter</tool_call>",
        '<tool_call>file_reader {"filepath": "x"}</tool_call>',
        "TASK_COMPLETED",
    )
    outcome = await evaluate(ITEM, chat)
    assert outcome.details["executed"] == ["teleporter", "file_reader"]
    assert outcome.details["outcomes"] == "FF"
    assert outcome.details["errors"] == {"UNKNOWN_TOOL": 1, "INVALID_PARAMETERS": 1}
    assert "expected parameters: path (string, required)" in chat.seen[2][-1]["content"]


async def test_the_same_failing_call_three_times_stops_the_test() -> None:
    chat = Scripted('<tool_call>file_reader {"path": 1}</tool_call>')
    outcome = await evaluate(ITEM, chat)
    assert outcome.metrics["turns"] == 3
    assert outcome.details["stop"] == "repeated_failures"


async def test_seed_parameter() -> None:
    chat = Scripted("TASK_COMPLETED")
    await evaluate(ITEM, chat, run_seed=3)
    assert chat.params == [{"seed": ITEM.seed_with(3) % 2**31}]
    quiet = Scripted("TASK_COMPLETED")
    await evaluate(ITEM, quiet, send_seed=False)
    assert quiet.params == [{}]


async def test_make_evaluate_binds_the_run_seed() -> None:
    bound = make_evaluate(9)
    assert await bound(ITEM, Diligent(ITEM, 9)) == await evaluate(
        ITEM, Diligent(ITEM, 9), run_seed=9
    )


async def test_flawed_prompt_records_the_flaw() -> None:
    item = WorkItem("m", "flawed_missing_step", 0.8, "easy", "basic_task", 0)
    chat = Scripted("TASK_COMPLETED")
    outcome = await evaluate(item, chat)
    assert outcome.details["flaw"].startswith("removed step")
    assert "Recommended plan:" in chat.seen[0][1]["content"]


async def test_an_undo_step_reverses_an_earlier_result() -> None:
    item = WorkItem("m", "optimal", 0.9, "easy", "simple_task", 0)
    chat = Scripted(
        '<tool_call>file_writer {"path": "o.csv"}</tool_call>',
        '<tool_call>file_deleter {"path": "o.csv"}</tool_call>',
        "TASK_COMPLETED",
    )
    outcome = await evaluate(item, chat, run_seed=1)
    assert outcome.details["required"] == ["web_scraper", "file_writer"]
    assert outcome.details["outcomes"] == "SS"  # fixed by the seed
    assert "reversed the results of file_writer" in chat.seen[2][-1]["content"]
    # nothing required stands at the end → achievement 0; quality 0.3+0.25+0.25·1/2+0.2
    assert outcome.metrics["phase2_score"] == pytest.approx(0.5 * 0.875)

"""Simulated models taking the benchmark in-process: plausible, model-dependent, reproducible."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ultra_async.config import Config
from ultra_async.sim.behaviour import (
    DEFAULT_PROFILE,
    PROFILES,
    estimate_tokens,
    profile_for,
    respond,
)
from ultra_async.suites.workflow.dimensions import PROMPT_TYPES, TASK_TYPES
from ultra_async.suites.workflow.executor import evaluate
from ultra_async.suites.workflow.item import WorkflowItem as WorkItem
from ultra_async.suites.workflow.prompts import build_prompt
from ultra_async.suites.workflow.tasks import select_task
from ultra_async.types import ChatResponse, Message, Outcome

STRONG, WEAK = "o3-0416-global", "qwen2.5-3b-instruct"


class Brain:
    """A chat function that asks the simulated model directly, as the simulator server would."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.replies: list[str] = []

    async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
        text = respond(self.model, list(messages), seed=params.get("seed", 0))
        self.replies.append(text)
        prompt_tokens = sum(estimate_tokens(str(m["content"])) for m in messages)
        return ChatResponse(text, prompt_tokens, estimate_tokens(text))


async def _run(
    model: str, prompt_type: str, n: int = 50, difficulty: str = "easy"
) -> list[Outcome]:
    outcomes = []
    for i in range(n):
        item = WorkItem(model, prompt_type, 0.8, difficulty, TASK_TYPES[i % 5], i // 5)
        outcomes.append(await evaluate(item, Brain(model), run_seed=1))
    return outcomes


def _full(outcomes: list[Outcome]) -> float:
    return sum(o.success_level == "full_success" for o in outcomes) / len(outcomes)


def test_every_configured_model_has_its_own_profile(repo_config: Config) -> None:
    for model in repo_config.models:
        assert model in PROFILES
    assert profile_for("some-new-model") == DEFAULT_PROFILE
    assert profile_for("DeepSeek-V3-0324-2") == PROFILES["DeepSeek-V3-0324"]
    assert PROFILES[STRONG].skill > PROFILES["qwen2.5-72b-instruct"].skill > PROFILES[WEAK].skill


async def test_strong_model_beats_weak_model_with_the_optimal_plan() -> None:
    strong, weak = _full(await _run(STRONG, "optimal")), _full(await _run(WEAK, "optimal"))
    assert strong >= 0.8
    assert strong - weak >= 0.3


async def test_flawed_plans_hurt() -> None:
    for model in (STRONG, "qwen2.5-72b-instruct"):
        optimal = _full(await _run(model, "optimal", n=100))
        for flaw in ("flawed_missing_step", "flawed_tool_misuse", "flawed_sequence_disorder"):
            assert _full(await _run(model, flaw, n=100)) < optimal - 0.1, (model, flaw)


async def test_a_strong_model_sometimes_notices_a_flaw() -> None:
    outcomes = await _run(STRONG, "flawed_missing_step")
    assert 0.1 < _full(outcomes) < 0.9


async def test_baseline_searches_for_tools() -> None:
    outcomes = await _run("DeepSeek-V3-0324", "baseline", n=20)
    assert all(o.details["searches"] > 0 for o in outcomes)
    assert _full(outcomes) >= 0.4


async def test_weak_models_make_format_errors_and_strong_ones_rarely_do() -> None:
    weak = await _run(WEAK, "cot")
    strong = await _run(STRONG, "cot")
    assert sum(o.details["assisted_turns"] for o in weak) > 5
    assert sum(o.details["assisted_turns"] for o in strong) <= 2


async def test_every_prompt_type_runs() -> None:
    for prompt_type in PROMPT_TYPES:
        outcomes = await _run("gpt-4o-mini", prompt_type, n=5)
        for outcome in outcomes:
            assert (
                outcome.metrics["turns"] >= 1 and outcome.input_tokens > outcome.output_tokens > 0
            )


async def test_same_seed_same_outcome() -> None:
    item = WorkItem("kimi-k2", "flawed_parameter_error", 0.7, "hard", "api_integration", 4)
    first = await evaluate(item, Brain("kimi-k2"), run_seed=2)
    second = await evaluate(item, Brain("kimi-k2"), run_seed=2)
    assert first == second


def test_respond_is_a_pure_function() -> None:
    item = WorkItem(WEAK, "baseline", 0.8, "medium", "basic_task", 0)
    messages = [dict(m) for m in build_prompt(select_task(item), "baseline").messages]
    replies = {respond(WEAK, messages, seed=s) for s in range(30)}
    assert respond(WEAK, messages, seed=7) == respond(WEAK, messages, seed=7)
    assert len(replies) > 1  # the seed matters


def test_reasoning_models_think_before_acting() -> None:
    item = WorkItem("DeepSeek-R1-0528", "optimal", 0.8, "easy", "simple_task", 0)
    messages = [dict(m) for m in build_prompt(select_task(item), "optimal").messages]
    assert respond("DeepSeek-R1-0528", messages, seed=1).startswith("<think>")


def test_other_conversations_get_a_short_answer() -> None:
    assert respond(STRONG, [{"role": "user", "content": "Hello?"}], seed=0).endswith(
        "TASK_COMPLETED"
    )
    assert estimate_tokens("") == 1 and estimate_tokens("x" * 40) == 10

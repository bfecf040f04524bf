"""The engine against the simulator: request errors, keyless endpoints, params, cost cap, TPM."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses
from pydantic import SecretStr

from ultra_async.config import Config, RetryPolicy, load_config
from ultra_async.engine.client import ChatClient
from ultra_async.engine.engine import Engine, RunSummary
from ultra_async.engine.retry import Retrier
from ultra_async.errors import RequestRejectedError
from ultra_async.planner import make_plan
from ultra_async.sim import FaultRule, sim_setup_from_config
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, Route, TestResult, WorkItem

CONFIG = """
defaults:
  retry: {max_attempts: 4, base_delay_s: 0.01, max_delay_s: 0.02, test_deadline_s: 30}
keys:
  k: {env: T_K}
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:1/v1", params: {temperature: 0.3}}
  az: {kind: azure, base_url: "http://127.0.0.1:1", api_version: "2024-12-01-preview"}
  local: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
models:
  plain:
    provider: p
    strategy: single
    keys: [k]
    workers: 2
    qps: 200
    params: {max_tokens: 32, seed: 3}
    price: {input_per_mtok: 1000, output_per_mtok: 1000}
  filtered: {provider: az, strategy: single, keys: [k], deployments: [filtered], workers: 2, qps: 200}
  thinker: {provider: p, strategy: single, keys: [k], workers: 1, qps: 200, reasoning: true}
  local-model: {provider: local, strategy: single, workers: 4}
  budgeted:
    provider: p
    strategy: keys
    keys: [k]
    workers: 1
    tpm: 12000
    params: {max_tokens: 16}
"""


def evaluate(sent: list[Any] | None = None) -> Callable[[WorkItem, ChatFn], Any]:
    async def run(item: WorkItem, chat: ChatFn) -> Outcome:
        reply = await chat([{"role": "user", "content": "x" * 200}], temperature=0.9)
        if sent is not None:
            sent.append(reply)
        return Outcome(
            success_level="full_success",
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
        )

    return run


async def run_models(
    config: Config,
    models: str,
    *,
    instances: int = 2,
    faults: Sequence[FaultRule] = (),
    responder: Callable[[str, Any, Mapping[str, Any]], str] | None = None,
    done: Sequence[str] = (),
    **engine: Any,
) -> tuple[list[TestResult], RunSummary, dict[str, Any]]:
    setup = sim_setup_from_config(config, seed=1)
    options: dict[str, Any] = {"faults": faults}
    if responder is not None:
        options["responder"] = responder
    results: list[TestResult] = []

    async def collect(result: TestResult) -> None:
        results.append(result)

    plan = make_plan(config, workflow_matrix(config, models=models, instances=instances), done)
    async with setup.server(**options) as server:
        urls = {name: server.base_url_for(p.kind) for name, p in config.data.providers.items()}
        keys = config.resolve_keys(env=setup.env)
        async with Engine(config, keys=keys, base_urls=urls, **engine) as running:
            summary = await running.run(plan, evaluate(), on_result=collect)
        stats = server.stats()
    return results, summary, stats


@pytest.fixture
def config(write_yaml: Callable[[str], Path]) -> Config:
    return load_config(write_yaml(CONFIG))


async def test_a_content_filter_400_ends_the_test_as_request_error_sent_once(
    config: Config,
) -> None:
    results, summary, stats = await run_models(
        config, "filtered", faults=[FaultRule(model="filtered", content_filter=1.0)]
    )
    assert len(results) == 10 and summary.request_errors == 10 and summary.completed == 0
    assert stats["models"]["filtered"]["requests"] == 10  # never retried
    for result in results:
        assert result.outcome == "request_error"
        assert (result.reason or "").startswith("400 content_filter: The response was")
        assert result.details["request_error"] == {"status": 400, "code": "content_filter"}
    # a rerun that counts them as done sends nothing
    again, summary, _ = await run_models(
        config, "filtered", done=[r.item_id for r in results], faults=[FaultRule(status=500)]
    )
    assert again == [] and summary.requests == 0


async def test_rejected_request_is_not_retried_and_route_errors_stay_route_fatal() -> None:
    import aiohttp

    route = Route("p", "openai", "http://127.0.0.1:9/v1", "k", "K")
    fast = Retrier(RetryPolicy(max_attempts=5), sleep=_no_sleep)
    async with aiohttp.ClientSession() as session:
        client = ChatClient(session)
        with aioresponses() as mock:
            body = {"error": {"message": "too long", "code": "context_length_exceeded"}}
            mock.post(route.url, status=400, payload=body, repeat=True)
            with pytest.raises(RequestRejectedError) as info:
                await fast.call(lambda: client.complete(route, "m", SecretStr("s"), []))
            assert info.value.reason == "400 context_length_exceeded: too long"
            assert sum(len(calls) for calls in mock.requests.values()) == 1
        with aioresponses() as mock:
            mock.post(route.url, status=422, payload={"error": {"message": "bad"}}, repeat=True)
            with pytest.raises(RequestRejectedError, match=r"^422: bad$"):
                await fast.call(lambda: client.complete(route, "m", SecretStr("s"), []))


async def _no_sleep(_: float) -> None:
    return None


async def test_configured_params_go_out_under_the_call_and_reasoning_rules_apply(
    config: Config,
) -> None:
    bodies: dict[str, list[Mapping[str, Any]]] = {}

    def record(model: str, messages: Any, body: Mapping[str, Any]) -> str:
        bodies.setdefault(model, []).append(body)
        return "TASK_COMPLETED"

    await run_models(config, "plain,thinker", instances=1, responder=record)
    plain = bodies["plain"][0]
    assert (plain["temperature"], plain["max_tokens"], plain["seed"]) == (0.9, 32, 3)
    thinker = bodies["thinker"][0]
    assert "temperature" not in thinker and "max_tokens" not in thinker


async def test_a_keyless_unlimited_local_model_runs(config: Config) -> None:
    results, summary, stats = await run_models(config, "local-model", instances=4)
    assert summary.completed == 20 and all(r.outcome == "completed" for r in results)
    assert stats["keys"]["keyless"]["ok"] == 20


async def test_max_cost_stops_taking_tests_and_leaves_the_rest_for_a_rerun(
    config: Config,
) -> None:
    # 1000 per million tokens: each test costs about 0.055 (50 prompt + 4 completion tokens)
    results, summary, _ = await run_models(config, "plain", instances=4, max_cost=0.1)
    assert summary.cost_capped and summary.interrupted
    assert summary.cost >= 0.1
    assert 2 <= len(results) <= 4  # two workers: at most one more test each once it is spent
    rest, summary, _ = await run_models(
        config, "plain", instances=4, done=[r.item_id for r in results]
    )
    assert len(rest) == 20 - len(results) and not summary.cost_capped


async def test_token_limit_kept_without_a_429(config: Config) -> None:
    # 12000 TPM per shard, one second (200 tokens) deep: each request reserves 50 + 4 + 16
    results, summary, stats = await run_models(config, "budgeted", instances=2)
    assert summary.completed == 10
    assert stats["total"]["rate_limited"] == 0
    assert stats["total"]["tokens"] == sum(r.input_tokens + r.output_tokens for r in results)

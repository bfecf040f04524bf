"""The engine end to end against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.loopback import Loopback, loopback_server
from ultra_async.config import Config, load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import make_plan
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, TestResult, WorkItem

CONFIG = """
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.01, max_delay_s: 0.05, test_deadline_s: 20}}
  burst: 1
  grace_s: {grace_s}
keys:
  k0: {{env: T_K0}}
  k1: {{env: T_K1}}
  k2: {{env: T_K2}}
  shared: {{env: T_SHARED, qps: {shared_qps}}}
providers:
  p: {{kind: openai, base_url: "http://127.0.0.1:1/v1"}}
  az: {{kind: azure, base_url: "http://127.0.0.1:1", api_version: "2024-12-01-preview"}}
models:
  m-keys: {{provider: p, strategy: keys, keys: [k0, k1, k2], instance_prefix: mk, workers: 3, qps: {qps}}}
  m-inst: {{provider: az, strategy: instances, keys: [k0], deployments: [m-inst, m-inst-2], workers: 4, qps: {qps}}}
  closed-a: {{provider: p, strategy: single, keys: [shared], workers: 4, qps: 100}}
  closed-b: {{provider: p, strategy: single, keys: [shared], workers: 4, qps: 100}}
"""
KEYS = {name: SecretStr(f"secret-{name}") for name in ("k0", "k1", "k2", "shared")}


def make_config(
    write_yaml: Callable[[str], Path],
    *,
    qps: float | str = 1000,
    shared_qps: float = 1000,
    grace_s: float = 5,
) -> Config:
    return load_config(write_yaml(CONFIG.format(qps=qps, shared_qps=shared_qps, grace_s=grace_s)))


def evaluator(requests_per_test: int = 1) -> Callable[[WorkItem, ChatFn], object]:
    async def evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
        tokens = 0
        for _ in range(requests_per_test):
            response = await chat([{"role": "user", "content": item.id}])
            tokens += response.output_tokens
        return Outcome(
            success_level="full_success",
            metrics={"workflow_score": 1, "phase2_score": 1},
            output_tokens=tokens,
        )

    return evaluate


async def run_plan(
    config: Config, server: Loopback, models: str, instances: int, requests_per_test: int = 1
) -> tuple[list[TestResult], object]:
    plan = make_plan(config, workflow_matrix(config, models=models, instances=instances))
    results: list[TestResult] = []

    async def collect(result: TestResult) -> None:
        results.append(result)

    base_urls = {"p": server.base_url + "/v1", "az": server.base_url}
    async with Engine(config, keys=KEYS, base_urls=base_urls) as engine:
        summary = await engine.run(plan, evaluator(requests_per_test), on_result=collect)
    return results, summary


async def test_every_item_once_and_in_flight_within_workers(
    write_yaml: Callable[[str], Path],
) -> None:
    config = make_config(write_yaml)
    async with loopback_server(Loopback(latency_s=0.01)) as server:
        results, summary = await run_plan(
            config, server, "m-keys,m-inst", instances=8, requests_per_test=2
        )
    ids = [r.item_id for r in results]
    assert len(ids) == len(set(ids)) == 2 * 5 * 8
    assert all(r.outcome == "completed" and r.requests == 2 for r in results)
    # peak in-flight requests per (key, model) ≤ the shard's workers
    for group, peak in server.peak.items():
        workers = 3 if "m-keys" in group else 4
        assert 1 <= peak <= workers, (group, peak)
    # each key shard really used its own key
    per_key = Counter(r.shard for r in results if r.model == "m-keys")
    assert set(per_key) == {"mk-key0", "mk-key1", "mk-key2"}
    assert len(server.times["secret-k1"]) > 0 and len(server.times["secret-k2"]) > 0
    assert summary.completed == 80 and summary.infra_errors == 0  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_request_rate_kept_per_shard_and_per_shared_key(
    write_yaml: Callable[[str], Path],
) -> None:
    # two models share one key limited to 20 req/s: together they must stay under it
    config = make_config(write_yaml, shared_qps=20)
    async with loopback_server(Loopback()) as server:
        results, _ = await run_plan(config, server, "closed-a,closed-b", instances=6)
    times = sorted(server.times["secret-shared"])
    assert len(times) == len(results) == 60
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved <= 20 * 1.1, achieved
    # sliding window: no 1-second window holds more than qps + burst requests
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u - t < 1.0)
        assert in_window <= 21, in_window


async def test_revoked_key_shard_work_is_done_by_siblings(
    write_yaml: Callable[[str], Path],
) -> None:
    config = make_config(write_yaml)
    async with loopback_server(Loopback(revoked={"secret-k1"}, latency_s=0.005)) as server:
        results, summary = await run_plan(config, server, "m-keys", instances=6)
    assert len({r.item_id for r in results}) == len(results) == 30
    assert all(r.outcome == "completed" for r in results)
    assert "mk-key1" not in {r.shard for r in results}
    assert list(summary.dead_shards) == ["m-keys/mk-key1"]  # type: ignore[attr-defined]
    assert "401" in summary.dead_shards["m-keys/mk-key1"]  # type: ignore[attr-defined]
    assert "secret-k1" not in str(summary.dead_shards)  # type: ignore[attr-defined]


async def test_all_shards_dead_records_infra_errors(write_yaml: Callable[[str], Path]) -> None:
    config = make_config(write_yaml)
    async with loopback_server(Loopback(revoked={"secret-shared"})) as server:
        results, _summary = await run_plan(config, server, "closed-a", instances=3)
    assert len(results) == 15 and all(r.outcome == "infra_error" for r in results)
    assert all("no working shard left" in (r.reason or "") for r in results)


async def test_429s_are_retried_and_slow_the_shard(write_yaml: Callable[[str], Path]) -> None:
    # only a range adapts: a fixed qps is paused by Retry-After but never lowered
    config = make_config(write_yaml, qps="{start: 1000, min: 1}")
    server = Loopback(limit_qps={"secret-k0": (50.0, 2.0)})
    async with loopback_server(server):
        results, summary = await run_plan(config, server, "m-inst", instances=6)
    assert len(results) == 30 and all(r.outcome == "completed" for r in results)
    assert server.statuses[429] > 0
    assert summary.rate_limited == server.statuses[429]  # type: ignore[attr-defined]
    assert summary.retries >= server.statuses[429]  # type: ignore[attr-defined]


async def test_stop_mid_run_delivers_finished_results_within_grace(
    write_yaml: Callable[[str], Path],
) -> None:
    config = make_config(write_yaml, grace_s=0.3)
    plan = make_plan(config, workflow_matrix(config, models="m-keys", instances=40))
    results: list[TestResult] = []
    async with loopback_server(Loopback(latency_s=0.02)) as server:
        async with Engine(config, keys=KEYS, base_urls={"p": server.base_url + "/v1"}) as engine:

            async def collect(result: TestResult) -> None:
                results.append(result)
                if len(results) == 10:
                    engine.request_stop()

            loop = asyncio.get_running_loop()
            started = loop.time()
            summary = await engine.run(plan, evaluator(3), on_result=collect)
            stopped_in = loop.time() - started
    assert summary.interrupted
    assert 10 <= len(results) < plan.total
    assert summary.finished == len(results)
    assert len({r.item_id for r in results}) == len(results)
    assert stopped_in < 10  # bounded: the grace period, not the whole plan


async def test_slow_test_hits_deadline_as_infra_error(write_yaml: Callable[[str], Path]) -> None:
    text = CONFIG.format(qps=1000, shared_qps=1000, grace_s=1).replace(
        "test_deadline_s: 20", "test_deadline_s: 0.2"
    )
    config = load_config(write_yaml(text))
    plan = make_plan(config, workflow_matrix(config, models="closed-a", instances=1))

    async def stuck(item: WorkItem, chat: ChatFn) -> Outcome:
        await asyncio.sleep(30)
        return Outcome()

    async with Engine(config, keys=KEYS) as engine:
        summary = await engine.run(plan, stuck)
    assert summary.infra_errors == 5 and summary.completed == 0


async def test_evaluate_bug_is_recorded_not_fatal(write_yaml: Callable[[str], Path]) -> None:
    config = make_config(write_yaml)
    plan = make_plan(config, workflow_matrix(config, models="closed-a", instances=1))
    seen: list[TestResult] = []

    async def broken(item: WorkItem, chat: ChatFn) -> Outcome:
        raise ValueError("bug in my evaluation")

    async def collect(result: TestResult) -> None:
        seen.append(result)

    async with Engine(config, keys=KEYS) as engine:
        await engine.run(plan, broken, on_result=collect)
    assert len(seen) == 5
    assert all("ValueError: bug in my evaluation" in (r.reason or "") for r in seen)


async def test_results_stream_as_async_iterator(write_yaml: Callable[[str], Path]) -> None:
    config = make_config(write_yaml)
    plan = make_plan(config, workflow_matrix(config, models="m-keys", instances=2))
    async with loopback_server(Loopback()) as server:
        async with Engine(config, keys=KEYS, base_urls={"p": server.base_url + "/v1"}) as engine:
            ids = [r.item_id async for r in engine.results(plan, evaluator())]
    assert sorted(ids) == sorted(i.id for sp in plan.shards for i in sp.items)


async def test_missing_keys_stop_before_sending(write_yaml: Callable[[str], Path]) -> None:
    from ultra_async.errors import MissingKeysError

    config = make_config(write_yaml)
    plan = make_plan(config, workflow_matrix(config, models="m-keys", instances=1))
    async with Engine(config) as engine:
        with pytest.raises(MissingKeysError, match="T_K0, T_K1, T_K2"):
            await engine.run(plan, evaluator())


async def test_shard_failing_with_5xx_yields_its_work_to_siblings(
    write_yaml: Callable[[str], Path],
) -> None:
    from ultra_async.engine.test_run import FAILING_TESTS_BEFORE_YIELDING

    config = make_config(write_yaml)
    # healthy answers take 50 ms, so the siblings are busy while the failing shard's tests fail
    async with loopback_server(Loopback(failing={"secret-k1"}, latency_s=0.05)) as server:
        results, summary = await run_plan(config, server, "m-keys", instances=12)
    assert len({r.item_id for r in results}) == len(results) == 60
    assert "tests in a row failed" in summary.dead_shards["m-keys/mk-key1"]  # type: ignore[attr-defined]
    failed = [r for r in results if r.outcome == "infra_error"]
    # only the tests that ran before the shard gave up (at most one streak per worker) failed
    assert all(r.shard == "mk-key1" for r in failed)
    assert len(failed) < FAILING_TESTS_BEFORE_YIELDING + 3
    assert sum(r.outcome == "completed" for r in results) == 60 - len(failed)


async def test_stop_requested_before_run_starts_is_kept(write_yaml: Callable[[str], Path]) -> None:
    config = make_config(write_yaml)
    plan = make_plan(config, workflow_matrix(config, models="closed-a", instances=4))
    async with Engine(config, keys=KEYS) as engine:
        engine.request_stop()  # e.g. Ctrl-C while the plan was being read
        summary = await engine.run(plan, evaluator())
        assert summary.interrupted and summary.finished == 0
        assert not engine.stopping  # the next run is not affected

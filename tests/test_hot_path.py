"""The request path's cheaper parts: one timer for every test deadline, the collector's
threshold during a run, and database writes spaced by a minimum interval."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from tests.fixtures.factory import stream
from tests.fixtures.waiting import until
from ultra_async.config import load_config
from ultra_async.engine import collector
from ultra_async.engine.client import Endpoint
from ultra_async.engine.deadlines import Deadlines
from ultra_async.engine.engine import Engine
from ultra_async.planner import make_plan
from ultra_async.results import _db_writer as db_writer_module
from ultra_async.results.aggregator import Aggregator
from ultra_async.sim import FaultRule, SimServer
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, Route, TestResult, WorkItem


async def test_deadlines_expire_in_order_across_lengths() -> None:
    deadlines = Deadlines()
    ended: list[str] = []

    async def test(name: str, seconds: float, runs_for: float) -> None:
        deadline = deadlines.start(seconds)
        try:
            try:
                await asyncio.sleep(runs_for)
            finally:
                expired = deadlines.finish(deadline)
        except asyncio.CancelledError:
            assert expired
            ended.append(f"{name}:expired")
            return
        ended.append(f"{name}:done")

    await asyncio.gather(
        test("long-late", 0.30, 5),  # a longer deadline started first expires last
        test("short", 0.05, 5),
        test("short-fast", 0.05, 0.01),  # finishes in time: never cancelled
        test("mid", 0.15, 5),
    )
    deadlines.close()
    assert ended == ["short-fast:done", "short:expired", "mid:expired", "long-late:expired"]


async def test_deadline_lines_stay_as_long_as_the_tests_running() -> None:
    deadlines = Deadlines()
    held = deadlines.start(60)  # a slow test at the head holds back the finished ones
    for _ in range(10_000):
        deadlines.finish(deadlines.start(60))
    line = held.line
    assert len(line) <= 2 * 1 + 64
    assert not deadlines.finish(held)
    assert len(line) == 0
    deadlines.close()


async def test_a_deadline_only_takes_back_its_own_cancel() -> None:
    deadlines = Deadlines()
    verdicts: list[bool] = []

    async def test() -> None:
        task = asyncio.current_task()
        assert task is not None
        deadline = deadlines.start(0.01)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            task.cancel()  # an outside cancel lands before the test sees its deadline
            verdicts.append(deadlines.finish(deadline))
            raise

    runner = asyncio.create_task(test())
    await asyncio.gather(runner, return_exceptions=True)
    deadlines.close()
    assert verdicts == [False]  # not taken for the deadline: the cancel propagates
    assert runner.cancelled()


def test_endpoint_repr_hides_the_key() -> None:
    route = Route("p", "openai", "http://127.0.0.1:9/v1", "k", "K_ENV")
    endpoint = Endpoint(route, "m", SecretStr("sk-never-shown-1234"))
    assert "never" not in repr(endpoint) and "1234" not in repr(endpoint)
    assert str(endpoint.url) == "http://127.0.0.1:9/v1/chat/completions"


CONFIG = """
defaults:
  retry: {max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.01, test_deadline_s: 5}
keys: {k: {env: T_K}}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}}
models: {m: {provider: p, strategy: single, keys: [k], workers: 2, qps: 100}}
"""


async def test_a_run_raises_the_young_threshold_and_restores_it(
    write_yaml: Callable[[str], Path],
) -> None:
    config = load_config(write_yaml(CONFIG))
    plan = make_plan(config, workflow_matrix(config, models="m", instances=1))
    before = gc.get_threshold()
    seen: list[int] = []

    async def evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
        seen.append(gc.get_threshold()[0])
        return Outcome(success_level="full_success")

    async with Engine(config, keys={"k": SecretStr("x")}) as engine:
        await engine.run(plan, evaluate)
    assert seen and set(seen) == {max(before[0], collector.YOUNG_THRESHOLD)}
    assert gc.get_threshold() == before


def test_the_young_threshold_leaves_a_higher_or_disabled_one_alone() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(0, *before[1:])
        with collector.young_threshold():
            assert gc.get_threshold()[0] == 0
        gc.set_threshold(10**6, *before[1:])
        with collector.young_threshold():
            assert gc.get_threshold()[0] == 10**6
    finally:
        gc.set_threshold(*before)


async def test_database_writes_keep_the_minimum_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    totals: list[int] = []
    real = db_writer_module.atomic_write

    def counting(path: Path, chunks: Any, *, durable: bool = True) -> int:
        data = b"".join(chunks)
        totals.append(orjson.loads(data)["overall_stats"]["total"])
        return real(path, [data], durable=durable)

    monkeypatch.setattr(db_writer_module, "atomic_write", counting)
    results = list(stream())[:30]
    loop = asyncio.get_running_loop()
    async with Aggregator(
        tmp_path, buffer_size=1, flush_interval_s=60, min_write_interval_s=0.2, fsync="never"
    ) as agg:
        started = loop.time()
        for r in results:
            await agg.submit(r)
            await asyncio.sleep(0.005)
        await until(lambda: agg.counts["journaled"] == len(results))
        elapsed = loop.time() - started
    # a write per result would be 30; at most one per interval (+ the first and the last)
    assert len(totals) <= elapsed / 0.2 + 2
    assert totals[-1] == len(results)
    assert totals == sorted(totals)


HANG = """
defaults:
  timeouts: {connect_s: 2, read_s: 0.2, total_s: 0.2}
  retry: {max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.01, test_deadline_s: 60}
keys: {k: {env: T_HANG_K}}
providers: {p: {kind: openai, base_url: "BASE"}}
models: {m: {provider: p, strategy: single, keys: [k], workers: 2, qps: 100}}
"""


async def test_a_request_over_its_total_times_out_and_is_retried(
    write_yaml: Callable[[str], Path],
) -> None:
    secret = "sk-hang-test-0001"
    results: list[TestResult] = []

    async def evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
        await chat([{"role": "user", "content": "hi"}])
        return Outcome(success_level="full_success")

    async def collect(result: TestResult) -> None:
        results.append(result)

    faults = [FaultRule(hang=1.0, hang_s=30.0)]
    async with SimServer(keys={secret: "k"}, faults=faults) as server:
        config = load_config(write_yaml(HANG.replace("BASE", server.openai_base_url)))
        plan = make_plan(config, workflow_matrix(config, models="m", instances=1))
        async with Engine(config, keys={"k": SecretStr(secret)}) as engine:
            summary = await engine.run(plan, evaluate, on_result=collect)
    # every request hung past its 0.2 s total: each test tried twice, then gave up
    assert summary.infra_errors == len(results) == plan.total
    assert summary.requests == 2 * plan.total
    assert all("timed out" in (r.reason or "") for r in results)


def test_overlapping_runs_restore_the_threshold_once_the_last_ends() -> None:
    before = gc.get_threshold()
    first, second = collector.young_threshold(), collector.young_threshold()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first run ends while the second goes on
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before

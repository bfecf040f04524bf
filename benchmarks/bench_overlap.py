"""Overlap: do concurrent tests really wait for the server side by side?

The simulator (its own process, no rate limits) answers every request after a constant 50 ms
(`--latency-ms 50 --latency-sigma 0`). N one-request tests at concurrency C can finish no
sooner than ceil(N / C) round trips of 50 ms; `efficiency` = that bound / measured wall time.
A bare aiohttp loop (one session, C tasks sharing a counter) runs the same load for reference.
Both are measured on warm connections: the connection pool is filled by a warm-up run first.

`rtt_floor_ms` is one request at a time through the bare loop: the server's timer and the HTTP
round trip add about a millisecond to the 50 ms, so no client reaches an efficiency of 1.
`efficiency_vs_floor` uses ceil(N / C) such round trips as the bound instead: what is left is
the cost of keeping C requests in flight (both processes' CPU, scheduling on a shared machine).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from benchmarks._common import providers_file, sim_process, single_model_providers
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.logs import configure_logging
from ultra_async.planner import Matrix, make_plan
from ultra_async.sim import fake_secret
from ultra_async.suites.workflow.suite import workflow_cases
from ultra_async.types import ChatFn, Outcome, WorkItem

#: the default workflow cells: optimal × 0.8 × easy × the five task types
WORKFLOW_CASES = tuple(workflow_cases())

LATENCY_MS = 50.0
TESTS = 5000
CONCURRENCY = 100
ROUNDS = 3
MESSAGES = [{"role": "user", "content": "ping"}]


async def bare_rounds(base_url: str, key: str, tests: int, rounds: int) -> list[float]:
    """Wall seconds of `rounds` runs of `tests` requests by CONCURRENCY tasks, on one session."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"
    body = orjson.dumps({"model": "bench", "messages": MESSAGES})
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    walls: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(todo: list[int]) -> None:
            # C long-lived tasks sharing a counter: the cheapest way to keep C requests open
            while todo[0] > 0:
                todo[0] -= 1
                async with session.post(url, data=body, headers=headers) as response:
                    data = orjson.loads(await response.read())
                    assert response.status == 200, data

        async def load(n: int) -> None:
            todo = [n]
            await asyncio.gather(*(worker(todo) for _ in range(CONCURRENCY)))

        await load(CONCURRENCY)  # fill the pool
        for _ in range(rounds):
            started = time.perf_counter()
            await load(tests)
            walls.append(time.perf_counter() - started)
    return walls


async def rtt_floor_ms(base_url: str, key: str, requests: int) -> float:
    """Median round trip of sequential requests on a warm connection, in ms."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"
    body = orjson.dumps({"model": "bench", "messages": MESSAGES})
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(requests + 1):  # the first one opens the connection
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:]) * 1000


async def one_request(item: WorkItem, chat: ChatFn) -> Outcome:
    response = await chat(MESSAGES)
    return Outcome(success_level="full_success", output_tokens=response.output_tokens)


async def engine_rounds(providers: Path, base_url: str, tests: int, rounds: int) -> list[float]:
    """Wall seconds of `rounds` engine runs of `tests` one-request tests, on one warm engine."""
    config = load_config(providers)
    keys = {"bench-0": SecretStr(fake_secret("bench-0"))}
    warm = make_plan(
        config, Matrix(("bench",), WORKFLOW_CASES, instances=math.ceil(CONCURRENCY / 5))
    )
    walls: list[float] = []
    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        await engine.run(warm, one_request)  # fill the connection pool
        for _ in range(rounds):
            plan = make_plan(config, Matrix(("bench",), WORKFLOW_CASES, instances=tests // 5))
            started = time.perf_counter()
            summary = await engine.run(plan, one_request)
            walls.append(time.perf_counter() - started)
            assert summary.completed == plan.total == tests, summary
            assert summary.retries == 0, summary
    return walls


def run() -> dict[str, Any]:
    # the bucket is far above what the load needs: only the concurrency limit shapes the run
    text = single_model_providers(workers=CONCURRENCY, qps=10_000, burst=1000)
    latency = ["--latency-ms", str(LATENCY_MS), "--latency-sigma", "0"]
    with (
        providers_file(text) as providers,
        sim_process(providers, "--simple", "--no-limits", *latency) as sim,
    ):
        key = fake_secret("bench-0")
        floor_ms = asyncio.run(rtt_floor_ms(sim.openai_base_url, key, 20))
        bare, engine = [], []
        for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both
            bare += asyncio.run(bare_rounds(sim.openai_base_url, key, TESTS, 1))
            engine += asyncio.run(engine_rounds(providers, sim.openai_base_url, TESTS, 1))
        stats = sim.stats()["total"]
    waves = math.ceil(TESTS / CONCURRENCY)
    ideal = waves * LATENCY_MS / 1000
    floor = waves * floor_ms / 1000
    return {
        "latency_ms": LATENCY_MS,
        "tests": TESTS,
        "concurrency": CONCURRENCY,
        "ideal_wall_s": round(ideal, 3),
        "engine_wall_s": round(min(engine), 3),
        "bare_wall_s": round(min(bare), 3),
        "efficiency": round(ideal / min(engine), 3),
        "bare_efficiency": round(ideal / min(bare), 3),
        "rtt_floor_ms": round(floor_ms, 2),
        "efficiency_vs_floor": round(floor / min(engine), 3),
        "bare_efficiency_vs_floor": round(floor / min(bare), 3),
        "rounds": {
            "engine_wall_s": [round(x, 3) for x in engine],
            "bare_wall_s": [round(x, 3) for x in bare],
        },
        "server_peak_in_flight": stats["peak_in_flight"],
    }


if __name__ == "__main__":
    configure_logging("warning")
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

"""Engine overhead: the engine vs a bare aiohttp loop against the same zero-latency server.

Both send one chat request per test with the same concurrency to a simulator in another
process; the ratio engine_rps / bare_rps is the share of a bare loop's throughput the engine
keeps with its limits, retry wrapper, work queues and result objects.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from benchmarks._common import providers_file, sim_process, single_model_providers
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import Matrix, make_plan
from ultra_async.sim import fake_secret
from ultra_async.types import ChatFn, Outcome, WorkItem

TESTS = 6000
CONCURRENCY = 64
ROUNDS = 3
MESSAGES = [{"role": "user", "content": "ping"}]


async def bare_loop(base_url: str, key: str, tests: int) -> float:
    """Tests per second of a plain loop: one session, a semaphore, orjson."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with semaphore:
                body = orjson.dumps({"model": "bench", "messages": MESSAGES})
                async with session.post(url, data=body, headers=headers) as response:
                    data = orjson.loads(await response.read())
                    assert response.status == 200, data
                    assert data["choices"][0]["message"]["content"]

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(tests)))
        return tests / (time.perf_counter() - started)


async def trivial_evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
    response = await chat(MESSAGES)
    return Outcome(success_level="full_success", output_tokens=response.output_tokens)


async def engine_loop(providers: Any, base_url: str, tests: int) -> tuple[float, int]:
    config = load_config(providers)
    plan = make_plan(config, Matrix(("bench",), instances=tests // 5))
    keys = {"bench-0": SecretStr(fake_secret("bench-0"))}
    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        started = time.perf_counter()
        summary = await engine.run(plan, trivial_evaluate)
        elapsed = time.perf_counter() - started
    assert summary.completed == plan.total, summary
    return plan.total / elapsed, summary.requests


def run() -> dict[str, Any]:
    # a bucket far above what the server can serve: the limiter is on the path, never the cap
    text = single_model_providers(workers=CONCURRENCY, qps=1_000_000, burst=1000)
    with (
        providers_file(text) as providers,
        sim_process(providers, "--simple", "--no-limits") as sim,
    ):
        key = fake_secret("bench-0")
        asyncio.run(bare_loop(sim.openai_base_url, key, 500))  # warm up both sides
        bare, engine = [], []
        for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both
            bare.append(asyncio.run(bare_loop(sim.openai_base_url, key, TESTS)))
            rps, _ = asyncio.run(engine_loop(providers, sim.openai_base_url, TESTS))
            engine.append(rps)
    bare_rps, engine_rps = max(bare), max(engine)
    return {
        "tests": TESTS,
        "concurrency": CONCURRENCY,
        "bare_rps": round(bare_rps, 1),
        "engine_rps": round(engine_rps, 1),
        "ratio": round(engine_rps / bare_rps, 3),
        "rounds": {"bare": [round(x, 1) for x in bare], "engine": [round(x, 1) for x in engine]},
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

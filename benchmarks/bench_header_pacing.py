"""Header pacing: the configured rate is twice what the server really allows.

Three keys, one shard each, configured at `qps: 40`; the simulator (its own process) enforces
20 requests per second per key (burst 5) and says so in `x-ratelimit-*` headers. Two cases:
the OpenAI route (limits per minute, resets as `1s`/`20ms`) and the Azure route (remaining
counts, resets in plain seconds, no limits). The engine should pace itself from the headers
instead of learning the real limit from 429s.

`rate_limited_share` = 429s / requests seen by the server (the worse of the two cases);
`makespan_ratio` = wall time / the ideal at the server's real rate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._common import providers_file, sim_process
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import Matrix, make_plan
from ultra_async.sim import fake_secret
from ultra_async.suites.workflow.suite import workflow_cases
from ultra_async.types import ChatFn, Outcome, WorkItem

#: the default workflow cells: optimal × 0.8 × easy × the five task types
WORKFLOW_CASES = tuple(workflow_cases())

KEYS = 3
CONFIGURED_QPS = 40.0
SERVER_QPS = 20.0
WORKERS = 8
TESTS = 1200  # 20 s at the server's 60 requests per second in total


def providers(qps: float, kind: str) -> str:
    keys = "\n".join(f"  hp-{i}: {{env: HP_KEY_{i}}}" for i in range(KEYS))
    if kind == "azure":
        provider = (
            '{kind: azure, base_url: "http://127.0.0.1:1", api_version: "2024-12-01-preview"}'
        )
    else:
        provider = '{kind: openai, base_url: "http://127.0.0.1:1/v1"}'
    return f"""
defaults:
  retry: {{max_attempts: 8, base_delay_s: 0.05, max_delay_s: 1.0, test_deadline_s: 120}}
  burst: 2
keys:
{keys}
providers:
  sim: {provider}
models:
  bench:
    provider: sim
    strategy: keys
    keys: [{", ".join(f"hp-{i}" for i in range(KEYS))}]
    deployments: [bench]
    instance_prefix: bench
    workers: {WORKERS}
    qps: {qps}
"""


async def one_request(item: WorkItem, chat: ChatFn) -> Outcome:
    await chat([{"role": "user", "content": item.id}])
    return Outcome(success_level="full_success")


async def drive(path: Any, base_url: str) -> dict[str, Any]:
    config = load_config(path)
    plan = make_plan(config, Matrix(("bench",), WORKFLOW_CASES, instances=TESTS // 5))
    keys = {f"hp-{i}": SecretStr(fake_secret(f"hp-{i}")) for i in range(KEYS)}
    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        summary = await engine.run(plan, one_request)
    return {"completed": summary.completed, "wall_s": summary.wall_s}


def case(kind: str) -> dict[str, Any]:
    with (
        providers_file(providers(SERVER_QPS, kind)) as server_file,
        providers_file(providers(CONFIGURED_QPS, kind)) as engine_file,
        sim_process(server_file, "--simple") as sim,
    ):
        base = sim.base_url if kind == "azure" else sim.openai_base_url
        outcome = asyncio.run(drive(engine_file, base))
        stats = sim.stats()["total"]
    ideal_s = TESTS / (KEYS * SERVER_QPS)
    return {
        "requests": stats["requests"],
        "rate_limited": stats["rate_limited"],
        "rate_limited_share": round(stats["rate_limited"] / max(1, stats["requests"]), 4),
        "tests": outcome["completed"],
        "wall_s": round(outcome["wall_s"], 2),
        "ideal_s": round(ideal_s, 2),
        "makespan_ratio": round(outcome["wall_s"] / ideal_s, 3),
    }


def run() -> dict[str, Any]:
    openai = case("openai")
    azure = case("azure")
    return {
        "configured_qps": CONFIGURED_QPS,
        "server_qps": SERVER_QPS,
        "keys": KEYS,
        "openai_headers": openai,
        "azure_headers": azure,
        "rate_limited_share": max(openai["rate_limited_share"], azure["rate_limited_share"]),
        "makespan_ratio": max(openai["makespan_ratio"], azure["makespan_ratio"]),
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

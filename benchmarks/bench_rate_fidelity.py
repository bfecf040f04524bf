"""Rate fidelity: three keys at a configured QPS against a server enforcing exactly that QPS.

The simulator runs in its own process with one bucket per key at the configured rate. The
engine runs one shard per key (`strategy: keys`) with burst 2. Two cases:

- `default`: the server's bucket has the simulator's usual burst 5 (above the client's 2);
- `exact_bucket`: the server's bucket equals the configured one exactly (50 req/s, burst 2),
  3,000 requests, ideal 20.0 s. A fixed `qps: 50` must not be halved by a stray 429, and a
  client that keeps to its bucket should provoke none.

The server's own counters give the achieved rate per key and the 429s the engine provoked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._common import providers_file, sim_process, single_model_providers
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import Matrix, make_plan
from ultra_async.sim import fake_secret
from ultra_async.suites.workflow.suite import workflow_cases
from ultra_async.types import ChatFn, Outcome, WorkItem

#: the default workflow cells: optimal × 0.8 × easy × the five task types
WORKFLOW_CASES = tuple(workflow_cases())

KEYS = 3
QPS = 50.0
WORKERS = 8
SECONDS = 10
EXACT_REQUESTS = 3000


async def one_request(item: WorkItem, chat: ChatFn) -> Outcome:
    await chat([{"role": "user", "content": item.id}])
    return Outcome(success_level="full_success")


async def drive(providers: Any, base_url: str, tests: int) -> dict[str, Any]:
    config = load_config(providers)
    plan = make_plan(config, Matrix(("bench",), WORKFLOW_CASES, instances=tests // 5))
    keys = {f"bench-{i}": SecretStr(fake_secret(f"bench-{i}")) for i in range(KEYS)}
    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        summary = await engine.run(plan, one_request)
    return {
        "completed": summary.completed,
        "engine_429": summary.rate_limited,
        "wall_s": summary.wall_s,
    }


def case(tests: int, *sim_args: str) -> dict[str, Any]:
    text = single_model_providers(workers=WORKERS, qps=QPS, burst=2, keys=KEYS, strategy="keys")
    with providers_file(text) as providers, sim_process(providers, "--simple", *sim_args) as sim:
        outcome = asyncio.run(drive(providers, sim.openai_base_url, tests))
        stats = sim.stats()
    per_key = []
    for i in range(KEYS):
        counts = stats["keys"][f"bench-{i}"]
        per_key.append(
            {
                "key": f"bench-{i}",
                "configured_qps": QPS,
                "achieved_qps": round(counts["qps"], 2),
                "requests": counts["requests"],
                "rate_limited": counts["rate_limited"],
            }
        )
    deviation = max(abs(k["achieved_qps"] - QPS) / QPS * 100 for k in per_key)
    ideal_s = tests / (KEYS * QPS)
    return {
        "per_key": per_key,
        "max_deviation_pct": round(deviation, 2),
        "provoked_429": sum(k["rate_limited"] for k in per_key),
        "tests": outcome["completed"],
        "wall_s": round(outcome["wall_s"], 2),
        "ideal_s": round(ideal_s, 2),
        "efficiency": round(ideal_s / outcome["wall_s"], 3),
    }


def run() -> dict[str, Any]:
    default = case(int(KEYS * QPS * SECONDS))
    exact = case(EXACT_REQUESTS, "--burst", "2")
    return {
        **default,
        "server_burst": 5,
        "client_burst": 2,
        "exact_bucket": {**exact, "server_burst": 2, "client_burst": 2},
        "exact_bucket_efficiency": exact["efficiency"],
        "exact_bucket_provoked_429": exact["provoked_429"],
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

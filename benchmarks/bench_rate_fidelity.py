"""Rate fidelity: three keys at a configured QPS against a server enforcing exactly that QPS.

The simulator runs in its own process with one bucket per key at the configured rate (burst 5,
its default). The engine runs one shard per key (`strategy: keys`) with the default burst. The
server's own counters give the achieved rate per key and the 429s the engine provoked.
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
from ultra_async.types import ChatFn, Outcome, WorkItem

KEYS = 3
QPS = 50.0
WORKERS = 8
SECONDS = 10


async def one_request(item: WorkItem, chat: ChatFn) -> Outcome:
    await chat([{"role": "user", "content": item.id}])
    return Outcome(success_level="full_success")


async def drive(providers: Any, base_url: str, tests: int) -> dict[str, Any]:
    config = load_config(providers)
    plan = make_plan(config, Matrix(("bench",), instances=tests // 5))
    keys = {f"bench-{i}": SecretStr(fake_secret(f"bench-{i}")) for i in range(KEYS)}
    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        summary = await engine.run(plan, one_request)
    return {"completed": summary.completed, "engine_429": summary.rate_limited}


def run() -> dict[str, Any]:
    tests = int(KEYS * QPS * SECONDS)
    text = single_model_providers(workers=WORKERS, qps=QPS, burst=2, keys=KEYS, strategy="keys")
    with providers_file(text) as providers, sim_process(providers, "--simple") as sim:
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
    return {
        "per_key": per_key,
        "max_deviation_pct": round(deviation, 2),
        "provoked_429": sum(k["rate_limited"] for k in per_key),
        "tests": outcome["completed"],
        "server_burst": 5,
        "client_burst": 2,
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

"""Makespan: how close a mixed, sharded plan comes to the bound its rate limits set.

Two models, three shards each: `keyed` spreads over three API keys (`strategy: keys`),
`deployed` over three Azure deployments (`strategy: instances`). Every shard is configured at
QPS shard requests per second and the simulator (its own process, 20 ms median latency)
enforces exactly that rate per shard. Each test makes REQUESTS_PER_TEST requests in a row.

No schedule can finish sooner than the busiest model's requests divided by its shards' total
QPS (work only moves between shards of the same model); `ratio` = measured / that bound. The
requests are those the engine sent on live shards: the plan's 3 per test, plus any retries.

Then the same plan with one deployment answering every request with 401
(`--force-status deployed-2=401`): that shard dies on its first request and its two siblings
take its queue (work stealing), so the bound becomes the `deployed` requests over the QPS of
its two live shards. `ratio_dead_deployment` = measured / that bound. A third run answers
500 forever instead: 5xx is transient, so the shard is never declared dead and its tests end
as infra errors after their retries (reported, no target; its bound counts the failed requests,
which take the shard's tokens like any other).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._common import providers_file, sim_process
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine, RunSummary
from ultra_async.logs import configure_logging
from ultra_async.planner import Matrix, make_plan
from ultra_async.sim import fake_secret
from ultra_async.suites.workflow.suite import workflow_cases
from ultra_async.types import ChatFn, Outcome, WorkItem

#: the default workflow cells: optimal × 0.8 × easy × the five task types
WORKFLOW_CASES = tuple(workflow_cases())

QPS = 50.0
SHARDS = 3
WORKERS = 4
REQUESTS_PER_TEST = 3
INSTANCES = 100  # × 5 task types = 500 tests per model: 1500 requests, 10 s at 150 QPS
LATENCY_MS = 20.0
DEAD = "deployed-2"
MODELS = ("keyed", "deployed")

PROVIDERS = f"""
defaults:
  retry: {{max_attempts: 4, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 120}}
  burst: 2
keys:
  mk-0: {{env: MK_KEY_0}}
  mk-1: {{env: MK_KEY_1}}
  mk-2: {{env: MK_KEY_2}}
  mk-az: {{env: MK_KEY_AZ}}
providers:
  lab: {{kind: openai, base_url: "http://127.0.0.1:1/v1"}}
  az: {{kind: azure, base_url: "http://127.0.0.1:1", api_version: "2024-12-01-preview"}}
models:
  keyed:
    provider: lab
    strategy: keys
    keys: [mk-0, mk-1, mk-2]
    instance_prefix: keyed
    workers: {WORKERS}
    qps: {QPS}
  deployed:
    provider: az
    strategy: instances
    keys: [mk-az]
    deployments: [deployed, {DEAD}, deployed-3]
    workers: {WORKERS}
    qps: {QPS}
"""


async def three_requests(item: WorkItem, chat: ChatFn) -> Outcome:
    messages: list[dict[str, str]] = [{"role": "user", "content": item.id}]
    for turn in range(REQUESTS_PER_TEST):
        reply = await chat(messages)
        messages += [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": f"turn {turn + 1}"},
        ]
    return Outcome(success_level="full_success", metrics={"turns": REQUESTS_PER_TEST})


async def drive(providers: Path, base_url: str) -> tuple[RunSummary, float]:
    config = load_config(providers)
    plan = make_plan(config, Matrix(MODELS, WORKFLOW_CASES, instances=INSTANCES))
    keys = {name: SecretStr(fake_secret(name)) for name in config.data.keys}
    base_urls = {"lab": base_url + "/v1", "az": base_url}
    async with Engine(config, keys=keys, base_urls=base_urls) as engine:
        started = time.perf_counter()
        summary = await engine.run(plan, three_requests)
        wall = time.perf_counter() - started
    return summary, wall


def one_run(providers: Path, *sim_args: str) -> dict[str, Any]:
    """Run the plan against a fresh simulator; what the engine and the server saw."""
    latency = ["--latency-ms", str(LATENCY_MS), "--latency-sigma", "0.5"]
    with sim_process(providers, "--simple", *latency, *sim_args) as sim:
        summary, wall = asyncio.run(drive(providers, sim.base_url))
        stats = sim.stats()
    live = {m: SHARDS for m in MODELS}
    dead = {k.split("/")[1]: v for k, v in summary.dead_shards.items()}
    if DEAD in dead:
        live["deployed"] -= 1
    # requests the live shards had to send (a dead shard's few 401s took no server token)
    requests_per_model = {m: 0 for m in MODELS}
    for row in summary.shards:
        if row["dead"] is None:
            requests_per_model[row["model"]] += row["requests"]
    ideal = max(requests_per_model[m] / (live[m] * QPS) for m in MODELS)
    served = {**stats["keys"], **stats["models"]}
    shards = []
    for row in summary.shards:
        # the server's view: keyed shards differ by key, deployed shards by deployment
        where = row["shard"] if row["model"] == "deployed" else f"mk-{row['shard'][-1]}"
        counts = served.get(where, {})
        shards.append(
            {
                "shard": row["shard"],
                "tests": row["done"],
                "infra_errors": row["infra_errors"],
                "stolen": row["stolen"],
                "requests": row["requests"],
                "server_ok": counts.get("ok", 0),
                "server_qps": round(counts.get("qps") or 0.0, 2),
                "dead": row["dead"] is not None,
            }
        )
    return {
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(wall / ideal, 3),
        "tests": summary.completed,
        "infra_errors": summary.infra_errors,
        "requests": summary.requests,
        "server_ok": stats["total"]["ok"],
        "engine_429": summary.rate_limited,
        "server_429": stats["total"]["rate_limited"],
        "live_qps": {m: live[m] * QPS for m in MODELS},
        "requests_per_model": requests_per_model,
        "shards": shards,
    }


def run() -> dict[str, Any]:
    with providers_file(PROVIDERS) as providers:
        healthy = one_run(providers)
        dead_401 = one_run(providers, "--force-status", f"{DEAD}=401")
        dead_500 = one_run(providers, "--force-status", f"{DEAD}=500")
    tests = len(MODELS) * INSTANCES * 5
    return {
        "tests": tests,
        "requests_per_test": REQUESTS_PER_TEST,
        "ideal_requests": tests * REQUESTS_PER_TEST,
        "qps_per_shard": QPS,
        "total_qps": QPS * SHARDS * len(MODELS),
        "latency_ms": LATENCY_MS,
        "ratio": healthy["ratio"],
        "ratio_dead_deployment": dead_401["ratio"],
        "healthy": healthy,
        "dead_deployment_401": dead_401,
        "dead_deployment_500": dead_500,
    }


if __name__ == "__main__":
    configure_logging("warning")
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

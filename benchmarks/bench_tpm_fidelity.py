"""TPM fidelity: three keys, each limited by the server to the configured tokens per minute.

The model is configured with `tpm: 120000` per shard (three shards, `strategy: keys`), no
request limit (`qps` left out) and `params: {max_tokens: 64}`; the simulator (its own process)
enforces the same TPM per key and charges each request prompt + max_tokens at admission,
settled to the real usage when it answers, as the engine does. Prompts mix short and long
(about 25 to 1,000 tokens). `achieved_tpm` per key is the tokens the server counted per
minute in the steady state (after a WARMUP_S warm-up, until the last request), against the
configured TPM: `max_deviation_pct`; `provoked_429` counts the server's refusals.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
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
TPM = 120_000
WORKERS = 8
SECONDS = 20
WARMUP_S = 3.0
#: prompt lengths in characters (about 25 to 1,000 tokens)
PROMPT_CHARS = (100, 400, 1200, 4000)

PROVIDERS = f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 1.0, test_deadline_s: 120}}
keys:
{chr(10).join(f"  tpm-{i}: {{env: TPM_KEY_{i}}}" for i in range(KEYS))}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models:
  bench:
    provider: sim
    strategy: keys
    keys: [{", ".join(f"tpm-{i}" for i in range(KEYS))}]
    instance_prefix: bench
    workers: {WORKERS}
    tpm: {TPM}
    params: {{max_tokens: 64}}
"""


async def mixed_prompt(item: WorkItem, chat: ChatFn) -> Outcome:
    chars = random.Random(item.id).choice(PROMPT_CHARS)
    text = (item.id + " ") * (chars // (len(item.id) + 1) + 1)
    await chat([{"role": "user", "content": text[:chars]}])
    return Outcome(success_level="full_success")


def _tests() -> int:
    mean_tokens = sum(PROMPT_CHARS) / len(PROMPT_CHARS) / 4 + 8
    return int(KEYS * TPM / 60 * SECONDS / mean_tokens)


async def drive(path: Any, sim_url: str, base_url: str) -> dict[str, Any]:
    config = load_config(path)
    plan = make_plan(config, Matrix(("bench",), WORKFLOW_CASES, instances=_tests() // 5))
    keys = {f"tpm-{i}": SecretStr(fake_secret(f"tpm-{i}")) for i in range(KEYS)}

    async def stats() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(sim_url + "/sim/stats") as r:
            data: dict[str, Any] = orjson.loads(await r.read())
            return data

    async with Engine(config, keys=keys, base_urls={"sim": base_url}) as engine:
        run = asyncio.create_task(engine.run(plan, mixed_prompt))
        await asyncio.sleep(WARMUP_S)
        warm = await stats()
        summary = await run
    end = await stats()
    return {"warm": warm, "end": end, "completed": summary.completed, "wall_s": summary.wall_s}


def run() -> dict[str, Any]:
    with providers_file(PROVIDERS) as path, sim_process(path, "--simple") as sim:
        outcome = asyncio.run(drive(path, sim.base_url, sim.openai_base_url))
    per_key = []
    for i in range(KEYS):
        name = f"tpm-{i}"
        warm, end = outcome["warm"]["keys"][name], outcome["end"]["keys"][name]
        span_s = end["last_s"] - warm["last_s"]
        achieved = (end["tokens"] - warm["tokens"]) / span_s * 60 if span_s > 0 else 0.0
        per_key.append(
            {
                "key": name,
                "configured_tpm": TPM,
                "achieved_tpm": round(achieved),
                "requests": end["requests"],
                "rate_limited": end["rate_limited"],
            }
        )
    deviation = max(abs(k["achieved_tpm"] - TPM) / TPM * 100 for k in per_key)
    return {
        "per_key": per_key,
        "max_deviation_pct": round(deviation, 2),
        "provoked_429": sum(k["rate_limited"] for k in per_key),
        "tests": outcome["completed"],
        "wall_s": round(outcome["wall_s"], 2),
        "prompt_chars": list(PROMPT_CHARS),
        "estimate": "ceil(chars/4) + 4 per message, plus max_tokens; settled with usage",
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

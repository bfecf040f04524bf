"""Scale: 200,000 work items planned, run and recorded in one process.

The simulator runs in its own process with no latency and no limits (`--simple --no-limits`),
so the client's own costs are what is measured: planning, the engine's workers, and the real
Aggregator appending every result to the journal and rewriting `master_database.json` in a
temporary directory. The wiring is `runner.run_evaluation`'s (Aggregator → plan minus the
journal's done ids → Engine.run delivering to `aggregator.submit`), with a one-request evaluate.

The measurement runs in a child process of its own, so `peak_rss_mb` (the child's
`ru_maxrss`) is that of this run alone, not of the benchmark sections before it.

`buffer_size`: the aggregator requests a database write every `buffer_size` results and writes
are group-committed (what arrives during a write goes into the next one), so the number of
rewrites is bounded by how long one takes, whatever the buffer size. At this rate a small
buffer means a rewrite of the whole multi-megabyte document back to back for the entire run,
in a thread that competes with the event loop for the GIL; BUFFER_SIZE = 5,000 caps it at
40 rewrites for 200,000 results. `small_buffer` reruns a slice of the plan with the default
buffer of 3 to show the difference.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from benchmarks._common import ROOT, providers_file, sim_process
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.logs import configure_logging
from ultra_async.planner import make_plan, model_names
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE
from ultra_async.sim import fake_secret
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, WorkItem

ITEMS = 200_000
SMALL_BUFFER_ITEMS = 20_000  # the default-buffer comparison runs a tenth of the plan
BUFFER_SIZE = 5000
KEYS = 4
WORKERS = 64  # per shard (one shard per key): 256 tests in flight
#: two models × 10 prompt types × 4 rates × 5 difficulties × 5 task types = 2,000 cells
MODELS = ("scale-a", "scale-b")
CELLS = len(MODELS) * 10 * 4 * 5 * 5
MESSAGES = [{"role": "user", "content": "ping"}]


def providers_text(base_url: str) -> str:
    keys = "\n".join(f"  sc-{i}: {{env: SCALE_KEY_{i}}}" for i in range(KEYS))
    key_list = ", ".join(f"sc-{i}" for i in range(KEYS))
    models = "\n".join(
        f"  {m}: {{provider: sim, strategy: keys, keys: [{key_list}], instance_prefix: {m}, "
        f"workers: {WORKERS // len(MODELS)}, qps: 10000}}"
        for m in MODELS
    )
    return f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 1.0, test_deadline_s: 300}}
  burst: 1000
keys:
{keys}
providers:
  sim: {{kind: openai, base_url: "{base_url}"}}
models:
{models}
"""


async def one_request(item: WorkItem, chat: ChatFn) -> Outcome:
    response = await chat(MESSAGES)
    return Outcome(success_level="full_success", output_tokens=response.output_tokens)


async def measure(providers: Path, out: Path, items: int, buffer_size: int) -> dict[str, Any]:
    config = load_config(providers)
    keys = {name: SecretStr(fake_secret(name)) for name in config.data.keys}
    started = time.perf_counter()
    async with Aggregator(out, names=model_names(config), buffer_size=buffer_size) as aggregator:
        planning = time.perf_counter()
        matrix = workflow_matrix(
            config,
            models=",".join(MODELS),
            prompt_types="all_with_flawed",
            rates="0.6,0.7,0.8,0.9",
            difficulties="all",
            task_types="all",
            instances=items // CELLS,
        )
        plan = make_plan(config, matrix, aggregator.done_ids)
        plan_s = time.perf_counter() - planning
        async with Engine(config, keys=keys) as engine:
            summary = await engine.run(plan, one_request, on_result=aggregator.submit)
        del plan
    wall_s = time.perf_counter() - started  # including the final journal sync and db write
    counts = aggregator.counts
    assert summary.completed == matrix.size and summary.infra_errors == 0, summary
    assert counts["journaled"] == matrix.size, counts
    return {
        "items": matrix.size,
        "buffer_size": buffer_size,
        "plan_s": round(plan_s, 3),
        "wall_s": round(wall_s, 2),
        "engine_wall_s": round(summary.wall_s, 2),
        "tests_per_s": round(matrix.size / wall_s, 1),
        "db_writes": counts["db_writes"],
        "db_bytes_written": counts["bytes_written"],
        "journal_bytes": (out / JOURNAL_FILE).stat().st_size,
        "db_bytes": (out / DATABASE_FILE).stat().st_size,
    }


def child(base_url: str, items: int, buffer_size: int) -> dict[str, Any]:
    """One measured run in this (fresh) process."""
    configure_logging("warning")
    gc.collect()
    gc.freeze()  # as the CLI does after start-up
    with (
        providers_file(providers_text(base_url)) as providers,
        tempfile.TemporaryDirectory(prefix="ua-scale-") as tmp,
    ):
        result = asyncio.run(measure(providers, Path(tmp), items, buffer_size))
    # ru_maxrss is in KiB on Linux
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _in_child(base_url: str, items: int, buffer_size: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", base_url]
    proc = subprocess.run(
        [*cmd, str(items), str(buffer_size)],
        cwd=ROOT,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scale child failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}"
        )
    data: dict[str, Any] = orjson.loads(proc.stdout.splitlines()[-1])
    return data


def run() -> dict[str, Any]:
    # the simulator reads only keys and models from its providers file
    with (
        providers_file(providers_text("http://127.0.0.1:1/v1")) as providers,
        sim_process(providers, "--simple", "--no-limits") as sim,
    ):
        result = _in_child(sim.openai_base_url, ITEMS, BUFFER_SIZE)
        small = _in_child(sim.openai_base_url, SMALL_BUFFER_ITEMS, 3)
        server = sim.stats()["total"]
    result["server_requests"] = server["requests"]
    result["small_buffer"] = {
        k: small[k] for k in ("items", "buffer_size", "wall_s", "tests_per_s", "db_writes")
    }
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        out = child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        configure_logging("warning")
        print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

"""Replay: a finished 2,000-test simulated workflow run, replayed from the response cache.

The original run is `run --simulate` of the built-in workflow benchmark (the repository's
providers.yaml, its real shard topology and limits, the simulator's latencies) over four Azure
models × every prompt type × five task types × 10 instances = 2,000 tests, with transcripts
and the cache on (the defaults). The replay is the same run with `--fresh --cache only`: every
reply comes from the cache, so no request is sent and no rate-limit token is taken.

Fields: `requests` is what the replay sent (the simulator's own count; must be 0), `speedup`
is original wall / replay wall, `identical` is true when the two databases agree on every
statistic (timestamps and execution times aside, as in `db.comparable`).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks._common import ROOT
from ultra_async.config import load_config
from ultra_async.results.cache import CACHE_FILE
from ultra_async.results.db import comparable
from ultra_async.results.storage import JOURNAL_FILE
from ultra_async.results.transcripts import TRANSCRIPTS_FILE
from ultra_async.runner import RunOptions, RunReport, run_evaluation
from ultra_async.suites.workflow.dimensions import PROMPT_TYPES, TASK_TYPES

MODELS = "DeepSeek-V3-0324,Llama-3.3-70B-Instruct,gpt-4o-mini,gpt-5-mini"
INSTANCES = 10  # 4 models × 10 prompt types × 5 task types × 10 = 2,000 tests


async def _run(out: Path, **extra: Any) -> tuple[RunReport, float]:
    options = RunOptions(
        models=MODELS,
        prompt_types="all_with_flawed",
        instances=INSTANCES,
        simulate=True,
        seed=1,
        out=out,
        buffer_size=50,
        **extra,
    )
    started = time.perf_counter()
    report = await run_evaluation(options, config=load_config(ROOT / "providers.yaml"))
    return report, time.perf_counter() - started


def _sent(report: RunReport) -> int:
    assert report.sim_stats is not None
    return int(report.sim_stats["total"]["requests"])


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ua-bench-replay-") as tmp:
        out = Path(tmp)
        first, first_wall = asyncio.run(_run(out))
        original = comparable(orjson.loads(first.database.read_bytes()))
        sizes = {
            "cache_mb": round((out / CACHE_FILE).stat().st_size / 1e6, 2),
            "transcripts_mb": round((out / TRANSCRIPTS_FILE).stat().st_size / 1e6, 2),
            "journal_mb": round((out / JOURNAL_FILE).stat().st_size / 1e6, 2),
        }
        replay, replay_wall = asyncio.run(_run(out, fresh=True, cache="only"))
        replayed = comparable(orjson.loads(replay.database.read_bytes()))
    tests = first.summary.completed + first.summary.infra_errors
    planned = len(MODELS.split(",")) * len(PROMPT_TYPES) * len(TASK_TYPES) * INSTANCES
    assert tests == planned, first.summary
    return {
        "tests": tests,
        "original_requests": _sent(first),
        "original_wall_s": round(first_wall, 2),
        "replay_wall_s": round(replay_wall, 2),
        "requests": _sent(replay),
        "cached": replay.summary.cached,
        "replay_infra_errors": replay.summary.infra_errors,
        "speedup": round(first_wall / replay_wall, 1),
        "identical": original == replayed,
        **sizes,
    }

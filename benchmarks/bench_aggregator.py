"""The aggregator alone, with a database of 5,000 leaves: throughput, bytes written, loop stalls.

Run with `python -m benchmarks.bench_aggregator`; `run()` returns the figures as a dict.
"""

from __future__ import annotations

import asyncio
import gc
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import JOURNAL_FILE
from ultra_async.suites.workflow.dimensions import (
    DIFFICULTIES,
    ERROR_CATEGORIES,
    PROMPT_TYPES,
    TASK_TYPES,
)
from ultra_async.suites.workflow.dimensions import TOOL_SUCCESS_RATES as RATES
from ultra_async.suites.workflow.item import WorkflowItem as WorkItem
from ultra_async.types import TestResult

MODELS = ("gpt-4o-mini", "gpt-5-mini", "DeepSeek-V3-0324", "kimi-k2", "qwen2.5-72b-instruct")
PRODUCERS = 8


# A result's fields as a plain tuple: the garbage collector skips those, so the figures show
# the aggregator's own cost rather than that of a big list of objects kept alive by the bench.
Row = tuple[Any, ...]


def _row(item: WorkItem, rng: random.Random) -> Row:
    level = rng.choice(("full_success", "partial_success", "failure"))
    error = None if level == "full_success" else rng.choice(ERROR_CATEGORIES)
    return (
        item.id, item.model, item.prompt_type, item.tool_success_rate, item.difficulty,
        item.task_type, item.instance, level, error, rng.uniform(1, 40),
        *(rng.random() for _ in range(5)), rng.randint(1, 10), rng.randint(0, 12),
        rng.randint(500, 6000), rng.randint(50, 900),
    )  # fmt: skip


def _result(row: Row) -> TestResult:
    (item_id, model, prompt, rate, difficulty, task, instance, level, error, seconds,
     workflow, phase2, quality, final, coverage, turns, calls, tokens_in, tokens_out,
     ) = row  # fmt: skip
    labels = {
        "prompt_type": prompt,
        "tool_success_rate": f"{rate:g}",
        "difficulty": difficulty,
        "task_type": task,
    }
    return TestResult(
        item_id, model, item_id[len(model) + 1 : item_id.rindex("/")], instance, labels,
        f"{model}-2", "completed", execution_time_s=seconds, requests=3, success_level=level,
        score=final, metrics={"workflow_score": workflow, "phase2_score": phase2,
        "quality_score": quality, "final_score": final, "turns": turns, "tool_calls": calls,
        "tool_coverage_rate": coverage}, error_category=error, input_tokens=tokens_in,
        output_tokens=tokens_out,
    )  # fmt: skip


def _rows(instances: range, rng: random.Random) -> list[Row]:
    out = [
        _row(WorkItem(m, p, r, d, t, i), rng)
        for m in MODELS
        for p in PROMPT_TYPES
        for r in RATES
        for d in DIFFICULTIES
        for t in TASK_TYPES
        for i in instances
    ]
    rng.shuffle(out)
    return out


async def _measure(out: Path, rows: list[Row], rate_per_s: float | None) -> dict[str, Any]:
    """Feed `rows` as fast as possible (rate None) or at a steady rate; time it all."""
    loop = asyncio.get_running_loop()
    stall = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal stall
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - before - 0.001)

    async def flood(share: list[Row], agg: Aggregator) -> None:
        for row in share:
            await agg.submit(_result(row))
            await asyncio.sleep(0)  # producers are engine workers: they yield between results

    async def paced(agg: Aggregator, rate: float) -> None:
        start = loop.time()
        for k, row in enumerate(rows):
            await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
            await agg.submit(_result(row))

    tick = loop.create_task(ticker())
    agg = Aggregator(out)
    await agg.__aenter__()
    stall = 0.0  # the measured phase starts now
    journal_before = (out / JOURNAL_FILE).stat().st_size
    start = time.perf_counter()
    try:
        if rate_per_s is None:
            shares = [rows[k::PRODUCERS] for k in range(PRODUCERS)]
            await asyncio.gather(*(flood(share, agg) for share in shares))
        else:
            await paced(agg, rate_per_s)
    finally:
        await agg.__aexit__(None, None, None)
    elapsed = time.perf_counter() - start
    stop.set()
    await tick
    counts = agg.counts
    written = counts["bytes_written"] + (out / JOURNAL_FILE).stat().st_size - journal_before
    return {
        "results_per_s": round(len(rows) / elapsed),
        "max_loop_stall_ms": round(stall * 1000, 2),
        "bytes_per_result": round(written / len(rows)),
        "db_writes": counts["db_writes"],
        "db_bytes_per_write": round(counts["bytes_written"] / max(1, counts["db_writes"])),
    }


def _phase(existing: list[Row], rows: list[Row], rate_per_s: float | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_aggregator_") as tmp:
        out = Path(tmp)
        # The database already has every leaf (a resumed run): one journaled result per leaf.
        journal = b"".join(orjson.dumps(_result(row)) + b"\n" for row in existing)
        (out / JOURNAL_FILE).write_bytes(journal)
        return asyncio.run(_measure(out, rows, rate_per_s))


def run(instances: int = 10, paced_rate_per_s: float = 2000, paced_s: float = 4) -> dict[str, Any]:
    """Measure the aggregator alone on a 5,000-leaf database (about 10 s on 2 cores).

    Two phases: `instances` results per leaf as fast as producers can submit them (the
    throughput), then a steady `paced_rate_per_s` (ten times a large real run) for
    `paced_s` (the loop stall while database writes go on). `full_gc_ms` is one full
    garbage collection of this process: it stalls any event loop, whatever it runs.
    """
    rng = random.Random(0)
    existing = _rows(range(1), rng)
    fresh = _rows(range(1, 1 + instances), rng)
    flood = _phase(existing, fresh, None)
    paced = _phase(existing, fresh[: int(paced_rate_per_s * paced_s)], paced_rate_per_s)
    gc.collect()
    before = time.perf_counter()
    gc.collect()
    return {
        "leaves": len(existing),
        "results_per_s": flood["results_per_s"],
        "max_loop_stall_ms": paced["max_loop_stall_ms"],
        "bytes_per_result": paced["bytes_per_result"],
        "paced_rate_per_s": paced_rate_per_s,
        "paced_db_writes": paced["db_writes"],
        "db_bytes_per_write": paced["db_bytes_per_write"],
        "saturated_max_loop_stall_ms": flood["max_loop_stall_ms"],
        "saturated_bytes_per_result": flood["bytes_per_result"],
        "full_gc_ms": round((time.perf_counter() - before) * 1000, 1),
        "fsync": "batch",
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

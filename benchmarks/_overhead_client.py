"""One client of the overhead benchmark, alone in its own process; prints one JSON line.

python -m benchmarks._overhead_client MODE --base-url URL --key KEY --out DIR [--requests N]
    [--concurrency C] [--uvloop]

MODE is `bare` (one aiohttp session, a semaphore, orjson), `engine` (the engine through
`run_evaluation`: aggregator and journal on), `engine_no_journal` (the engine alone, results
discarded) or `workflow` (like `engine`, with the workflow suite's real evaluate).
`--young-threshold N` sets the collector's young-generation threshold for the whole run (0: the
engine leaves Python's default in place), to show what that setting is worth. CPU time is
the process's user + system time (every thread, so the aggregator's too) over the run only:
imports and interpreter start-up are outside the window, as they are for the bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ultra_async.config import load_config
from ultra_async.engine import engine as engine_module
from ultra_async.engine.engine import Engine
from ultra_async.logs import configure_logging
from ultra_async.planner import Matrix, Plan, make_plan
from ultra_async.runner import RunOptions, run_evaluation
from ultra_async.suites.workflow.suite import workflow_cases
from ultra_async.types import ChatFn, Outcome, WorkItem

MESSAGES = [{"role": "user", "content": "ping"}]
#: sampling period of the tests-in-flight counter
SAMPLE_S = 0.01


async def bare(base_url: str, key: str, requests: int, concurrency: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with semaphore:
                body = orjson.dumps({"model": "bench", "messages": MESSAGES})
                async with session.post(url, data=body, headers=headers) as response:
                    data = orjson.loads(await response.read())
                    assert response.status == 200, data
                    assert data["choices"][0]["message"]["content"]

        await asyncio.gather(*(one() for _ in range(requests)))
    return {"tests": requests, "requests": requests}


async def trivial_evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
    response = await chat(MESSAGES)
    return Outcome(success_level="full_success", output_tokens=response.output_tokens)


class Sampler:
    """Tests in flight, every SAMPLE_S, while the engine runs (bounded by the run's length)."""

    def __init__(self) -> None:
        self.samples: list[int] = []

    @contextlib.asynccontextmanager
    async def watch(self, engine: Engine, plan: Plan) -> AsyncIterator[None]:
        async def sample() -> None:
            while True:
                await asyncio.sleep(SAMPLE_S)
                self.samples.append(engine.in_flight)

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def median(self) -> float:
        # the first and last tenth are ramp-up and drain, when fewer tests than workers remain
        cut = len(self.samples) // 10
        steady = self.samples[cut : len(self.samples) - cut] or self.samples or [0]
        return float(statistics.median(steady))


async def engine(
    providers: Path, out: Path, requests: int, *, journal: bool, workflow: bool
) -> dict[str, Any]:
    sampler = Sampler()
    config = load_config(providers)
    # transcripts and the response cache off: the figure is the engine, aggregator and journal
    recording: dict[str, Any] = {"transcripts": "none", "cache": "off"}
    evaluate: Any
    if workflow:
        evaluate = None  # the workflow suite's own evaluate
        # a mix of prompt types, so conversations differ in length and scoring in outcome
        prompts = ("optimal", "baseline", "flawed_sequence_disorder", "cot")
        options = RunOptions(
            models="bench",
            prompt_types=prompts,
            instances=max(1, requests // 20),
            out=out,
            **recording,
        )
    else:
        evaluate = trivial_evaluate
        options = RunOptions(models="bench", instances=max(1, requests // 5), out=out, **recording)
    if journal:
        report = await run_evaluation(
            options, config=config, evaluate=evaluate, progress=sampler.watch
        )
        summary = report.summary
    else:
        assert evaluate is not None, "the workflow variant runs with the journal"
        cases = tuple(workflow_cases())
        plan = make_plan(config, Matrix(("bench",), cases, instances=max(1, requests // 5)))
        async with Engine(config) as eng, sampler.watch(eng, plan):
            summary = await eng.run(plan, evaluate)
    assert summary.completed == summary.planned, summary
    return {
        "tests": summary.completed,
        "requests": summary.requests,
        "in_flight_median": sampler.median(),
    }


def providers_text(base_url: str, concurrency: int) -> str:
    # a bucket far above what any client reaches: the limiter is on the path, never the cap
    return f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 1.0, test_deadline_s: 120}}
  burst: 1000
keys:
  loopkey-0: {{env: BENCH_KEY_0}}
providers:
  loop: {{kind: openai, base_url: "{base_url}"}}
models:
  bench:
    provider: loop
    strategy: single
    keys: [loopkey-0]
    workers: {concurrency}
    qps: 10000
"""


def young_threshold(threshold: int) -> None:
    """The collector's young-generation threshold for this process, whoever runs the loop."""
    if threshold == 0:
        # the engine's own setting switched off: Python's default stays for the whole run
        engine_module.young_threshold = lambda: contextlib.nullcontext()
    else:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])


Main = Callable[[], Coroutine[Any, Any, dict[str, Any]]]


def measure(main: Main, uvloop: bool) -> dict[str, Any]:
    gc.collect()
    gc.freeze()  # as the CLI does: start-up objects are not rescanned by every collection
    cpu0, wall0, times0 = time.process_time(), time.perf_counter(), os.times()
    if uvloop:
        import uvloop as uv

        data = uv.run(main())
    else:
        data = asyncio.run(main())
    cpu, wall, times1 = time.process_time() - cpu0, time.perf_counter() - wall0, os.times()
    data.update(
        cpu_s=round(cpu, 4),
        user_s=round(times1.user - times0.user, 4),
        system_s=round(times1.system - times0.system, 4),
        wall_s=round(wall, 4),
        cpu_ms_per_request=round(1000 * cpu / data["requests"], 4),
        cpu_ms_per_test=round(1000 * cpu / data["tests"], 4),
        rps=round(data["requests"] / wall, 1),
    )
    return data


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("bare", "engine", "engine_no_journal", "workflow"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--young-threshold", type=int, default=None)
    args = parser.parse_args(argv)
    if args.young_threshold is not None:
        young_threshold(args.young_threshold)
    configure_logging("warning")
    os.environ["BENCH_KEY_0"] = args.key
    args.out.mkdir(parents=True, exist_ok=True)
    providers = args.out / "providers.yaml"
    providers.write_text(providers_text(args.base_url, args.concurrency), encoding="utf-8")
    if args.mode == "bare":
        run: Main = lambda: bare(  # noqa: E731
            args.base_url, args.key, args.requests, args.concurrency
        )
    else:
        run = lambda: engine(  # noqa: E731
            providers,
            args.out / "results",
            args.requests,
            journal=args.mode != "engine_no_journal",
            workflow=args.mode == "workflow",
        )
    data = measure(run, args.uvloop)
    print(orjson.dumps({"mode": args.mode, "uvloop": args.uvloop, **data}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One evaluation run, wired end to end: plan → (simulator) → engine → aggregator → summary.

`run_evaluation` is what `python -m ultra_async run` and `ultra_async.run(...)` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from .config import Config, load_config
from .engine.engine import Engine, RunSummary
from .planner import Plan, make_plan, matrix_from, model_names
from .results.aggregator import Aggregator
from .types import Evaluate, TestResult

log = structlog.get_logger("ultra_async.runner")


@dataclass(slots=True)
class RunOptions:
    """Everything a run needs; field names follow the CLI flags."""

    models: str | Iterable[str] = "all"
    prompt_types: str | Iterable[str] = "optimal"
    rates: str | Iterable[str | float] = "0.8"
    difficulties: str | Iterable[str] = "easy"
    task_types: str | Iterable[str] = "all"
    instances: int = 1
    simulate: bool = False
    seed: int = 0
    out: Path = Path("results")
    fresh: bool = False
    providers: Path | None = None
    buffer_size: int = 3
    #: stop taking new tests once the responses cost this much (models' `price`)
    max_cost: float | None = None
    #: simulator knobs (only with simulate=True)
    sim_latency_ms: float | None = None


@dataclass(slots=True)
class RunReport:
    """What `run` returns: the engine's summary, where the results are, the plan's shape."""

    summary: RunSummary
    out: Path
    database: Path
    journal: Path
    planned: int
    skipped: int
    sim_stats: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def _simulator(
    config: Config, options: RunOptions
) -> AsyncIterator[tuple[dict[str, SecretStr] | None, dict[str, str], Any]]:
    """Start the embedded simulator for this config, or yield nothing to talk to real APIs."""
    if not options.simulate:
        yield None, {}, None
        return
    from .sim import Latency, sim_setup_from_config

    setup = sim_setup_from_config(config, seed=options.seed)
    options_: dict[str, Any] = {}
    if options.sim_latency_ms is not None:
        options_["latency"] = Latency(median_ms=options.sim_latency_ms)
    async with setup.server(**options_) as sim:
        keys = {name: SecretStr(secret) for name, secret in setup.secrets.items()}
        base_urls = {
            name: sim.base_url_for(spec.kind) for name, spec in config.data.providers.items()
        }
        yield keys, base_urls, sim


def _install_stop_signals(engine: Engine) -> Callable[[], None]:
    """First Ctrl-C/SIGTERM: graceful stop. Second: cancel at once. Returns an uninstaller."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    count = 0

    def on_signal() -> None:
        nonlocal count
        count += 1
        if count == 1:
            engine.request_stop()
        elif main is not None:
            main.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (e.g. a notebook's worker thread): no handlers

    def uninstall() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return uninstall


async def run_evaluation(
    options: RunOptions,
    *,
    config: Config | None = None,
    evaluate: Evaluate | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
    handle_signals: bool = False,
    progress: Callable[[Engine, Plan], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> RunReport:
    """Plan, run and record one evaluation; resumes from the journal in `options.out`."""
    config = config or load_config(options.providers)
    matrix = matrix_from(config, options)
    keys: dict[str, SecretStr] | None = None
    if not options.simulate:
        # fail before creating anything or sending a single request
        keys = config.resolve_keys(matrix.models)
    if evaluate is None:
        from .suites.workflow import make_evaluate

        evaluate = make_evaluate(options.seed)
    out = Path(options.out)
    if options.fresh:
        from .results.storage import fresh_start

        fresh_start(out)
    names = model_names(config)
    async with Aggregator(out, names=names, buffer_size=options.buffer_size) as aggregator:
        plan = make_plan(config, matrix, aggregator.done_ids)
        log.info("plan_ready", tests=plan.total, already_done=plan.skipped, out=str(out))

        async def deliver(result: TestResult) -> None:
            await aggregator.submit(result)
            if on_result is not None:
                maybe = on_result(result)
                if asyncio.iscoroutine(maybe):
                    await maybe

        async with _simulator(config, options) as (sim_keys, base_urls, sim):
            async with Engine(
                config, keys=sim_keys or keys, base_urls=base_urls, max_cost=options.max_cost
            ) as engine:
                uninstall = _install_stop_signals(engine) if handle_signals else (lambda: None)
                try:
                    display = progress(engine, plan) if progress else contextlib.nullcontext()
                    async with display:
                        summary = await engine.run(plan, evaluate, on_result=deliver)
                finally:
                    uninstall()
            sim_stats = sim.stats() if sim is not None else None
    return RunReport(
        summary=summary,
        out=out,
        database=out / "master_database.json",
        journal=out / "results.jsonl",
        planned=plan.total,
        skipped=plan.skipped,
        sim_stats=sim_stats,
    )

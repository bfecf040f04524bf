"""One evaluation run, wired end to end: suite → plan → (simulator) → engine → aggregator → summary.

`run_evaluation` is what `python -m ultra_async run` and `ultra_async.run(...)` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from ._prepare import Prepared, plan_only, prepare, suite_of
from ._simulated import simulator, suite_responder
from .config import Config, load_config
from .engine.engine import Engine, RunSummary
from .engine.recording import open_recording
from .planner import Plan, make_plan, model_names
from .results.aggregator import Aggregator
from .results.layout import suite_layout
from .results.transcripts import set_aside_transcripts
from .suites.suite import Suite
from .types import ChatFn, Outcome, TestResult, WorkItem

__all__ = [
    "Prepared",
    "RunOptions",
    "RunReport",
    "plan_only",
    "prepare",
    "run_evaluation",
    "suite_of",
]

log = structlog.get_logger("ultra_async.runner")


@dataclass(slots=True)
class RunOptions:
    """Everything a run needs; field names follow the CLI flags.

    `suite` is what to evaluate: a Suite, or None for the built-in workflow benchmark over the
    matrix options (`prompt_types`, `rates`, `difficulties`, `task_types`).
    """

    models: str | Iterable[str] = "all"
    suite: Suite | None = None
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
    #: secrets by key name (instead of the environment variables named in providers.yaml)
    keys: Mapping[str, str | SecretStr] | None = None
    #: base URL by provider name (replaces the configured one)
    base_urls: Mapping[str, str] | None = None
    #: rerun tests that ended as request or evaluate errors
    retry_errors: bool = False
    #: rerun tests whose case (labels or data) changed since they were journaled
    rerun_changed: bool = False
    #: a smoke run: at most this many cases (after `sample`), in the suite's order
    limit: int | None = None
    #: a smoke run: this fraction of the cases, chosen by a digest of case id and seed
    sample: float | None = None
    #: stop taking new tests once the responses cost this much (models' `price`)
    max_cost: float | None = None
    #: simulator knobs (only with simulate=True)
    sim_latency_ms: float | None = None
    #: conversations kept: all, failures (not a completed full success) or none
    transcripts: str = "all"
    #: response cache: off, use, refresh (send and store anew) or only (never send)
    cache: str = "use"
    #: a cache shared across results directories (default: one in `out`)
    cache_dir: Path | None = None


@dataclass(slots=True)
class RunReport:
    """What `run` returns: the engine's summary, where the results are, the plan's shape."""

    summary: RunSummary
    out: Path
    database: Path
    journal: Path
    planned: int
    skipped: int
    suite: str = "workflow"
    #: items whose case changed since they were journaled (skipped unless rerun_changed)
    changed: list[str] = field(default_factory=list)
    sim_stats: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _install_stop_signals(engine: Engine) -> Callable[[], None]:
    """First Ctrl-C/SIGTERM: graceful stop. Second: cancel at once. Returns an uninstaller.

    After the second, `asyncio.run` raises CancelledError once the journal is flushed; the
    CLI turns that into exit code 130 and its one line. Handlers installed from a task stay
    until that task ends (the returned function does nothing then), so a further signal
    during the final flush cannot interrupt it: the aggregator shields its flush.
    """
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
        installed.clear()

    if main is None:
        return uninstall
    main.add_done_callback(lambda _: uninstall())
    return lambda: None


async def run_evaluation(
    options: RunOptions,
    *,
    config: Config | None = None,
    evaluate: Callable[[WorkItem, ChatFn], Any] | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
    handle_signals: bool = False,
    progress: Callable[[Engine, Plan], contextlib.AbstractAsyncContextManager[Any]] | None = None,
    prepared: Prepared | None = None,
) -> RunReport:
    """Plan, run and record one evaluation; resumes from the journal in `options.out`.

    `evaluate(item, chat)` overrides the suite's evaluate (it gets the work item, not the case).
    `prepared` is what `prepare(options, config)` returned, if the caller checked already.
    """
    config = config or load_config(options.providers)
    # fail before creating anything or sending a single request
    prepared = prepared or prepare(options, config)
    suite, matrix, keys, base_urls = (
        prepared.suite,
        prepared.matrix,
        prepared.keys,
        prepared.base_urls,
    )

    async def by_case(item: WorkItem, chat: ChatFn) -> Outcome:
        return await suite.evaluate(item.case, chat)

    run_one = evaluate or by_case
    out = Path(options.out)
    if options.fresh:
        from .results.storage import fresh_start

        backup = fresh_start(out)
        set_aside_transcripts(out, backup)
    names = model_names(config)
    layout = suite_layout(suite.name, suite.dimensions, suite.error_categories)
    recording_ = open_recording(
        out,
        transcripts=options.transcripts,  # type: ignore[arg-type]
        cache=options.cache,  # type: ignore[arg-type]
        cache_dir=options.cache_dir,
    )
    # Handlers stay installed until the final flush is done: a third Ctrl-C must not
    # interrupt it (the aggregator shields its flush from the cancellation).
    uninstall: Callable[[], None] = lambda: None  # noqa: E731
    try:
        async with (
            recording_ as (recording, writer),
            Aggregator(
                out,
                names=names,
                buffer_size=options.buffer_size,
                layout=layout,
                on_batch=writer.write if writer is not None else None,
            ) as aggregator,
        ):
            plan = make_plan(
                config,
                matrix,
                aggregator.journaled(),
                retry_errors=options.retry_errors,
                rerun_changed=options.rerun_changed,
            )
            if plan.changed and not options.rerun_changed:
                log.warning(
                    "cases_changed",
                    count=len(plan.changed),
                    first=plan.changed[:3],
                    hint="their results are kept; rerun them with --rerun-changed",
                )
            await aggregator.expect_replacements(plan.replacing)
            log.info("plan_ready", tests=plan.total, already_done=plan.skipped, out=str(out))

            async def deliver(result: TestResult) -> None:
                await aggregator.submit(result)
                if on_result is not None:
                    maybe = on_result(result)
                    if asyncio.iscoroutine(maybe):
                        await maybe

            responder = suite_responder(suite, plan, options.seed) if options.simulate else None
            async with simulator(
                config, options.simulate, options.seed, options.sim_latency_ms, responder
            ) as (
                sim_keys,
                sim_urls,
                sim,
            ):
                async with Engine(
                    config,
                    keys=keys if options.cache == "only" else sim_keys or keys,
                    base_urls=sim_urls if sim is not None else base_urls,
                    tag_requests=sim is not None and suite.simulate is not None,
                    recording=recording,
                    max_cost=options.max_cost,
                ) as engine:
                    if handle_signals:
                        uninstall = _install_stop_signals(engine)
                    display = progress(engine, plan) if progress else contextlib.nullcontext()
                    async with display:
                        # without a callback of the caller's, no wrapper coroutine per result
                        sink = deliver if on_result is not None else aggregator.submit
                        summary = await engine.run(
                            plan, run_one, on_result=sink, check_outcome=suite.check_outcome
                        )
                sim_stats = sim.stats() if sim is not None else None
    finally:
        uninstall()
    return RunReport(
        summary=summary,
        out=out,
        database=out / "master_database.json",
        journal=out / "results.jsonl",
        planned=plan.total,
        skipped=plan.skipped,
        suite=suite.name,
        changed=plan.changed,
        sim_stats=sim_stats,
    )

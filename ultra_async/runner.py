"""One evaluation run, wired end to end: suite → plan → (simulator) → engine → aggregator → summary.

`run_evaluation` is what `python -m ultra_async run` and `ultra_async.run(...)` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from .config import Config, load_config
from .engine.engine import Engine, RunSummary
from .engine.recording import open_recording
from .errors import ConfigError, PlanError
from .planner import Matrix, Plan, build_matrix, make_plan, model_names
from .results.aggregator import Aggregator
from .results.cache import CACHE_MODES
from .results.layout import suite_layout
from .results.transcripts import TRANSCRIPT_MODES, set_aside_transcripts
from .suites.suite import Responder, Suite
from .types import ChatFn, Outcome, TestResult, WorkItem

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


def suite_of(options: RunOptions) -> Suite:
    """The suite a run evaluates: the one given, or the workflow benchmark over the matrix."""
    if options.suite is not None:
        if not isinstance(options.suite, Suite):
            raise PlanError(f"suite must be a Suite, not {type(options.suite).__name__}")
        return options.suite
    from .suites.workflow.suite import workflow_suite

    return workflow_suite(
        prompt_types=options.prompt_types,
        rates=options.rates,
        difficulties=options.difficulties,
        task_types=options.task_types,
        seed=options.seed,
    )


def case_responder(suite: Suite, plan: Plan, run_seed: int) -> Responder:
    """The simulator's replies for a suite with `simulate`: the case is found by the request's
    `user` field (the work item id the engine sends to the embedded simulator)."""
    assert suite.simulate is not None
    simulate = suite.simulate
    items: dict[str, WorkItem] = {item.id: item for sp in plan.shards for item in sp.items}
    with_messages = suite.simulate_takes_messages()

    def reply(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        item = items.get(str(body.get("user", "")))
        if item is None:
            return "I cannot tell which case this is."
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        rng = random.Random(item.seed_with(run_seed) + turn)
        if with_messages:
            return simulate(item.case, model, rng, messages=messages)  # type: ignore[call-arg]
        return simulate(item.case, model, rng)

    return reply


def _responder(suite: Suite, plan: Plan, seed: int) -> Responder | None:
    if suite.simulate is not None:
        return case_responder(suite, plan, seed)
    if suite.responder is not None:
        return suite.responder(seed)
    return None


@contextlib.asynccontextmanager
async def _simulator(
    config: Config, options: RunOptions, responder: Responder | None
) -> AsyncIterator[tuple[dict[str, SecretStr] | None, dict[str, str], Any]]:
    """Start the embedded simulator for this config, or yield nothing to talk to real APIs."""
    if not options.simulate:
        yield None, {}, None
        return
    from .sim import Latency, sim_setup_from_config

    setup = sim_setup_from_config(config, seed=options.seed)
    options_: dict[str, Any] = {}
    if responder is not None:
        options_["responder"] = responder
    if options.sim_latency_ms is not None:
        options_["latency"] = Latency(median_ms=options.sim_latency_ms)
    async with setup.server(**options_) as sim:
        keys = {name: SecretStr(secret) for name, secret in setup.secrets.items()}
        base_urls = {
            name: sim.base_url_for(spec.kind) for name, spec in config.data.providers.items()
        }
        yield keys, base_urls, sim


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


@dataclass(slots=True)
class Prepared:
    """A run checked before anything is written: its suite, matrix, keys and base URLs."""

    suite: Suite
    matrix: Matrix
    keys: dict[str, SecretStr] | None
    base_urls: dict[str, str]


def prepare(options: RunOptions, config: Config) -> Prepared:
    """Everything that can refuse a run, checked before a single file is written or request sent:
    the suite and its cases, the models, the plan's size, base URLs, and (unless simulated) keys.
    """
    _check_recording_options(options)
    suite = suite_of(options)
    cases = suite.load_cases()
    matrix = build_matrix(config, cases, models=options.models, instances=options.instances)
    for model in matrix.models:
        config.base_url_of(config.models[model].provider)
    keys: dict[str, SecretStr] | None = None
    if options.cache == "only":
        # answered from the cache alone: no key is needed, none is sent
        keys = {name: SecretStr("cache-only-no-key") for name in config.data.keys}
    elif not options.simulate:
        keys = _given_keys(config, options, matrix.models)
    return Prepared(suite, matrix, keys, _base_urls(config, options))


def plan_only(options: RunOptions, config: Config | None = None) -> Plan:
    """The plan of a run before anything runs (no journal subtracted): what `plan` shows."""
    config = config or load_config(options.providers)
    cases = suite_of(options).load_cases()
    matrix = build_matrix(config, cases, models=options.models, instances=options.instances)
    return make_plan(config, matrix)


def _given_keys(config: Config, options: RunOptions, models: Iterable[str]) -> dict[str, SecretStr]:
    """Secrets for the models' keys: `options.keys` first, then the environment."""
    given = {
        name: value if isinstance(value, SecretStr) else SecretStr(str(value))
        for name, value in (options.keys or {}).items()
    }
    unknown = sorted(set(given) - set(config.data.keys))
    if unknown:
        raise ConfigError(
            f"keys= names {', '.join(unknown)}, not a key of providers.yaml "
            f"(its keys: {', '.join(config.data.keys)})"
        )
    needed = {key for model in models for key in config.models[model].keys}
    from_env = needed - set(given)
    if from_env:
        resolved = config.resolve_keys([m for m in models if set(config.models[m].keys) & from_env])
        given.update({k: v for k, v in resolved.items() if k in from_env})
    return given


def _base_urls(config: Config, options: RunOptions) -> dict[str, str]:
    urls = dict(options.base_urls or {})
    unknown = sorted(set(urls) - set(config.data.providers))
    if unknown:
        raise ConfigError(
            f"base_urls= names {', '.join(unknown)}, not a provider of providers.yaml "
            f"(its providers: {', '.join(config.data.providers)})"
        )
    return urls


def _check_recording_options(options: RunOptions) -> None:
    if options.transcripts not in TRANSCRIPT_MODES:
        raise ConfigError(
            f"transcripts must be one of {', '.join(TRANSCRIPT_MODES)} "
            f"(got {options.transcripts!r})"
        )
    if options.cache not in CACHE_MODES:
        raise ConfigError(f"cache must be one of {', '.join(CACHE_MODES)} (got {options.cache!r})")
    if options.cache_dir is not None:
        options.cache_dir = Path(options.cache_dir)


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

            responder = _responder(suite, plan, options.seed) if options.simulate else None
            async with _simulator(config, options, responder) as (sim_keys, sim_urls, sim):
                async with Engine(
                    config,
                    keys=keys if options.cache == "only" else sim_keys or keys,
                    base_urls=sim_urls if sim is not None else base_urls,
                    tag_requests=sim is not None and suite.simulate is not None,
                    recording=recording,
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

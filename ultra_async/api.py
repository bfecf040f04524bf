"""The library entry points: `run` from scripts and notebooks, `arun` in async code, `load`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr

from ._loop import run as run_loop
from .types import TestResult

if TYPE_CHECKING:
    from .engine import Engine
    from .planner import Plan
    from .runner import RunReport
    from .suites.suite import Suite

T = TypeVar("T")


def run_blocking(factory: Callable[[], Awaitable[T]]) -> T:
    """Run `factory()` to completion and return its result, from plain or notebook code.

    Without a running loop this is `asyncio.run` (on uvloop when `ultra_async[fast]` is
    installed). Inside one (a Jupyter cell), the coroutine runs on a fresh loop in a worker
    thread, so the notebook's loop is neither blocked by a nested run nor patched.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_loop(main())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ultra_async") as pool:
        return pool.submit(run_loop, main()).result()


@dataclass(slots=True)
class Results:
    """A results directory loaded for analysis (`ultra_async.load`)."""

    path: Path
    data: dict[str, Any]

    @property
    def out(self) -> Path:
        """The results directory (database, journal, run.log)."""
        return self.path.parent

    @property
    def models(self) -> list[str]:
        return sorted(self.data.get("models", {}))

    @property
    def dimensions(self) -> list[str]:
        """The suite's dimensions, in database order."""
        from .results.export import dimensions_of

        return list(dimensions_of(self.data)[1:])

    def summary(self) -> dict[str, Any]:
        """The root `summary` block of the database."""
        summary: dict[str, Any] = self.data.get("summary", {})
        return summary

    def to_dataframe(self) -> Any:
        """One row per leaf (model × every dimension) as a pandas DataFrame."""
        from .results.export import to_dataframe

        return to_dataframe(self.data)

    def tests(self) -> Any:
        """One row per test as a pandas DataFrame: model, shard, every label, outcome kind,
        success level, score, every metric, tokens, timings and the flattened details."""
        from .results.tests import tests_dataframe

        return tests_dataframe(self.out)


def load(path: str | Path = "results") -> Results:
    """Load `master_database.json` from a results directory (or the file itself)."""
    from .results.storage import DATABASE_FILE, read_database

    file = Path(path)
    if file.is_dir():
        file = file / DATABASE_FILE
    return Results(file, read_database(file))


def _interactive() -> bool:
    """True in a terminal or a Jupyter kernel, where a live progress display helps."""
    if "ipykernel" in sys.modules:
        return True
    return sys.stdout.isatty()


async def arun(
    suite: Suite | None = None,
    *,
    models: str | Iterable[str] = "all",
    instances: int = 1,
    limit: int | None = None,
    sample: float | None = None,
    simulate: bool = False,
    out: str | Path = "results",
    providers: str | Path | None = None,
    keys: Mapping[str, str | SecretStr] | None = None,
    base_urls: Mapping[str, str] | None = None,
    seed: int = 0,
    fresh: bool = False,
    retry_errors: bool = False,
    rerun_changed: bool = False,
    buffer_size: int = 3,
    max_cost: float | None = None,
    prompt_types: str | Iterable[str] = "optimal",
    rates: str | Iterable[str | float] = "0.8",
    difficulties: str | Iterable[str] = "easy",
    task_types: str | Iterable[str] = "all",
    transcripts: str = "all",
    cache: str = "use",
    cache_dir: str | Path | None = None,
    progress: bool | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
) -> RunReport:
    """Run (or resume) an evaluation of `suite` and return its RunReport.

    Without a suite, the built-in workflow benchmark runs over `prompt_types`, `rates`,
    `difficulties` and `task_types`. `limit` and `sample` make a smoke run of a part of the
    cases (a seeded fraction, then at most `limit`). `keys` gives secrets by key name and
    `base_urls` base URLs by provider name, so a script needs no environment variables.
    `simulate=True` runs against the embedded simulator (the suite's `simulate` gives the
    replies). `max_cost` stops taking new tests once the responses cost that much. `progress`
    shows a live display (default: in a terminal or a notebook). `transcripts` (all, failures,
    none) keeps conversations; `cache` (use, refresh, only, off) answers repeated requests
    from the response cache (`cache_dir` shares one across runs). Options are named like the
    CLI flags.
    """
    import structlog

    from .logs import configure_logging
    from .runner import RunOptions, run_evaluation

    if not structlog.is_configured():
        configure_logging("warning")
    options = RunOptions(
        models=models,
        suite=suite,
        prompt_types=prompt_types,
        rates=rates,
        difficulties=difficulties,
        task_types=task_types,
        instances=instances,
        limit=limit,
        sample=sample,
        simulate=simulate,
        seed=seed,
        out=Path(out),
        fresh=fresh,
        providers=Path(providers) if providers is not None else None,
        buffer_size=buffer_size,
        max_cost=max_cost,
        keys=keys,
        base_urls=base_urls,
        retry_errors=retry_errors,
        rerun_changed=rerun_changed,
        transcripts=transcripts,
        cache=cache,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
    show = _interactive() if progress is None else progress
    return await run_evaluation(options, on_result=on_result, progress=_display if show else None)


def _display(engine: Engine, plan: Plan) -> contextlib.AbstractAsyncContextManager[Any]:
    from .report.progress import live_progress

    return live_progress(engine, plan)


def run(suite: Suite | None = None, **options: Any) -> Any:
    """Run an evaluation from any code: `ua.run(suite, ...)`, or `await ua.run(...)` in a loop.

    Takes the options of `arun`. Without a running event loop (a script) it blocks and returns
    the RunReport. Inside one (a notebook cell, an async function) it returns an asyncio.Task
    on that loop: `await` it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_blocking(lambda: arun(suite, **options))
    return asyncio.ensure_future(arun(suite, **options))

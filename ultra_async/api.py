"""The library entry points: run an evaluation from scripts and notebooks, load results."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._loop import run as run_loop
from .types import Evaluate, TestResult

if TYPE_CHECKING:
    from .runner import RunOptions, RunReport

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
    """A results database loaded for analysis (`ultra_async.load`)."""

    path: Path
    data: dict[str, Any]

    @property
    def models(self) -> list[str]:
        return sorted(self.data.get("models", {}))

    def summary(self) -> dict[str, Any]:
        """The root `summary` block of the database."""
        summary: dict[str, Any] = self.data.get("summary", {})
        return summary

    def to_dataframe(self) -> Any:
        """One row per leaf (model × prompt × rate × difficulty × task) as a pandas DataFrame."""
        from .results.export import to_dataframe

        return to_dataframe(self.data)


def load(path: str | Path = "results") -> Results:
    """Load `master_database.json` from a results directory (or the file itself)."""
    from .results.storage import DATABASE_FILE, read_database

    file = Path(path)
    if file.is_dir():
        file = file / DATABASE_FILE
    return Results(file, read_database(file))


def _options(**kwargs: Any) -> RunOptions:
    from .runner import RunOptions

    if "out" in kwargs:
        kwargs["out"] = Path(kwargs["out"])
    if kwargs.get("providers") is not None:
        kwargs["providers"] = Path(kwargs["providers"])
    return RunOptions(**kwargs)


async def run_async(
    *,
    evaluate: Evaluate | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
    **options: Any,
) -> RunReport:
    """Run (or resume) an evaluation; keyword arguments are named like the CLI flags.

    `models`, `prompt_types`, `rates`, `difficulties`, `task_types`, `instances`, `simulate`,
    `seed`, `out`, `fresh`, `providers`, `buffer_size`. `evaluate` replaces the built-in
    benchmark with your own coroutine `(item, chat) -> TestOutcome`.
    """
    import structlog

    from .logs import configure_logging
    from .runner import run_evaluation

    if not structlog.is_configured():
        configure_logging("warning")
    return await run_evaluation(_options(**options), evaluate=evaluate, on_result=on_result)


def run(
    *,
    evaluate: Evaluate | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
    **options: Any,
) -> Any:
    """Run an evaluation from any code: `report = ua.run(...)`, or `await ua.run(...)` in a loop.

    Without a running event loop (a script) it blocks and returns the RunReport. Inside one
    (a notebook cell, an async function) it returns an asyncio.Task on that loop: `await` it.
    Use `run_sync` to block even inside a running loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_blocking(lambda: run_async(evaluate=evaluate, on_result=on_result, **options))
    return asyncio.ensure_future(run_async(evaluate=evaluate, on_result=on_result, **options))


def run_sync(
    *,
    evaluate: Evaluate | None = None,
    on_result: Callable[[TestResult], Any] | None = None,
    **options: Any,
) -> RunReport:
    """Like `run`, but always blocks until done (a worker thread when a loop is running)."""
    return run_blocking(lambda: run_async(evaluate=evaluate, on_result=on_result, **options))

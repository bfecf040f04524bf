"""Live progress of a run: a table in a terminal or a notebook cell, plain lines otherwise.

The numbers come from `progress_lines` (recent rates, done/total, ETA) and the table from
`progress_table`; this module shows them, refreshed, while the run goes on.

Use: `async with live_progress(engine, plan): await engine.run(plan, evaluate)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..engine.engine import Engine
from ..planner import Plan
from .progress_lines import Clock, Line, Rates, progress_lines
from .progress_table import progress_table

__all__ = ["Clock", "Line", "Rates", "live_progress", "progress_lines", "progress_table"]


@contextlib.asynccontextmanager
async def live_progress(
    engine: Engine,
    plan: Plan,
    *,
    console: Console | None = None,
    refresh_s: float = 0.5,
    plain_every_s: float = 5.0,
    stream: TextIO | None = None,
    window_s: float = 30.0,
    clock: Clock = time.monotonic,
) -> AsyncIterator[None]:
    """Show the progress of `plan` on `engine` while the body runs.

    In a terminal: a rich Live table. In a Jupyter kernel: one output that is updated in place
    (IPython display handle), so the cell keeps only the last frame. Otherwise (a file, a pipe,
    a log): one plain line every `plain_every_s` seconds. Nothing at all for an empty plan.
    """
    if plan.total == 0:
        yield
        return
    console = console or Console(file=stream)
    rates = Rates(window_s, clock)
    started = clock()
    stop = asyncio.Event()

    def render() -> Table:
        shards = engine.snapshot()
        return progress_table(
            shards, rates.sample(shards), height=console.height, elapsed_s=clock() - started
        )

    update: Callable[[], None]
    finish: Callable[[], None]
    period_s = refresh_s
    if console.is_jupyter:
        show = _jupyter_display(console)

        def update() -> None:
            show(render())

        finish = update
        period_s = max(refresh_s, 1.0)  # each frame is a message to the notebook
    elif console.is_terminal:
        live = Live(render(), console=console, auto_refresh=False, transient=False)
        live.start()

        def update() -> None:
            live.update(render(), refresh=True)

        def finish() -> None:
            update()
            live.stop()

    else:

        def update() -> None:
            _plain(console, engine, started, clock)

        finish = update
        period_s = plain_every_s
    task = asyncio.create_task(_every(period_s, update, stop))
    try:
        yield
    finally:
        stop.set()
        await task
        finish()


def _plain(console: Console, engine: Engine, started: float, clock: Clock) -> None:
    shards = engine.snapshot()
    done = sum(s["done"] + s["infra_errors"] for s in shards)
    total = max(done, sum(s["planned"] for s in shards))
    console.print(
        f"progress: {done}/{total} tests, "
        f"{sum(s['in_flight'] for s in shards)} in flight, "
        f"{sum(s['rate_limited'] for s in shards)} 429s, "
        f"{sum(s['infra_errors'] for s in shards)} infra errors, "
        f"{sum(1 for s in shards if s.get('dead'))} dead shards, "
        f"{clock() - started:.1f}s",
        highlight=False,
    )


def _jupyter_display(console: Console) -> Callable[[Table], None]:
    """Show a table in a notebook cell, replacing the previous frame (no stacked outputs)."""
    # a Jupyter kernel always has IPython; imported by name, it is no dependency of the package
    display = importlib.import_module("IPython.display").display
    handle: Any = None

    def show(table: Table) -> None:
        nonlocal handle
        # not a Jupyter console itself: rich would display every print as an output of its own
        frame = Console(
            record=True, width=min(console.width, 120), file=io.StringIO(), force_jupyter=False
        )
        frame.print(table)
        data = {
            "text/plain": frame.export_text(),
            "text/html": frame.export_html(inline_styles=True, code_format="<pre>{code}</pre>"),
        }
        if handle is None:
            handle = display(data, raw=True, display_id=True)
        else:
            handle.update(data, raw=True)

    return show


async def _every(period_s: float, action: Callable[[], None], stop: asyncio.Event) -> None:
    """Run `action` every `period_s` seconds until `stop` is set (bounded by the run itself)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
        if not stop.is_set():
            action()

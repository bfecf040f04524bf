"""Live progress: a table per model with its shards beneath, or plain lines when not a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..engine.engine import Engine
from ..planner import Plan


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def progress_table(rows: list[dict[str, Any]], elapsed_s: float) -> Table:
    """The display: one bold row per model, its shards beneath, an overall row last."""
    table = Table(title=None, expand=False, pad_edge=False)
    for col, justify in (
        ("model / shard", "left"),
        ("done", "right"),
        ("tests/s", "right"),
        ("in flight", "right"),
        ("qps (limit)", "right"),
        ("429s", "right"),
        ("retries", "right"),
        ("infra", "right"),
        ("ETA", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    models: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        models.setdefault(row["model"], []).append(row)

    def line(name: str, group: list[dict[str, Any]], style: str | None) -> None:
        done = sum(r["done"] + r["infra_errors"] for r in group)
        total = sum(r["planned"] for r in group)
        rate = done / elapsed_s if elapsed_s > 0 else 0.0
        left = total - done
        eta = left / rate if rate > 0 else None
        qps = sum(r["qps"] for r in group)
        qps_max = sum(r["qps_max"] for r in group)
        dead = " (dead)" if all(r["dead"] for r in group) else ""
        table.add_row(
            name + dead,
            f"{done}/{total}",
            f"{rate:.1f}",
            str(sum(r["in_flight"] for r in group)),
            f"{qps:g} ({qps_max:g})",
            str(sum(r["rate_limited"] for r in group)),
            str(sum(r["retries"] for r in group)),
            str(sum(r["infra_errors"] for r in group)),
            _fmt_eta(eta) if left else "done",
            style=style,
        )

    for model, group in models.items():
        line(model, group, "bold")
        if len(group) > 1:
            for row in group:
                line(f"  {row['shard']}", [row], None)
    if rows:
        line("all models", rows, "bold cyan")
    return table


@contextlib.asynccontextmanager
async def live_progress(
    engine: Engine,
    plan: Plan,
    *,
    console: Console | None = None,
    refresh_s: float = 0.5,
    plain_every_s: float = 5.0,
    stream: TextIO | None = None,
) -> AsyncIterator[None]:
    """Show progress while the body runs: rich Live on a terminal, a plain line otherwise."""
    if plan.total == 0:
        yield  # nothing to run, nothing to show
        return
    console = console or Console(file=stream)
    started = time.monotonic()
    stop = asyncio.Event()

    def render() -> Table:
        return progress_table(engine.snapshot(), time.monotonic() - started)

    async def plain() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), plain_every_s)
            rows = engine.snapshot()
            done = sum(r["done"] + r["infra_errors"] for r in rows)
            total = sum(r["planned"] for r in rows)
            console.print(
                f"progress: {done}/{total} tests, "
                f"{sum(r['in_flight'] for r in rows)} in flight, "
                f"{sum(r['rate_limited'] for r in rows)} 429s, "
                f"{sum(r['infra_errors'] for r in rows)} infra errors, "
                f"{time.monotonic() - started:.1f}s",
                highlight=False,
            )

    if console.is_terminal:
        with Live(render(), console=console, refresh_per_second=1 / refresh_s) as live:
            updater = asyncio.create_task(_refresh(live, render, refresh_s, stop))
            try:
                yield
            finally:
                stop.set()
                await updater
                live.update(render())
    else:
        task = asyncio.create_task(plain())
        try:
            yield
        finally:
            stop.set()
            await task


async def _refresh(live: Live, render: Any, every_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        live.update(render())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)

"""Live progress of a run: a table in a terminal or a notebook cell, plain lines otherwise.

What it shows is measured, not configured: tests/s, requests/s and tokens/min over the last
`window_s` seconds, beside each model's request limit; the ETA comes from that recent rate and is
never negative. A model's done/total never passes 100 %: a shard's total is what it did
(stolen work included) plus what it still holds. The totals row is the first row, so it stays on
screen; shard rows are shown while they fit the screen, dead shards always, with their reason.

Use: `async with live_progress(engine, plan): await engine.run(plan, evaluate)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..engine.engine import Engine
from ..planner import Plan
from .columns import shorten
from .rows import model_key, pct

Clock = Callable[[], float]
#: counters of a shard snapshot whose recent rate is measured
_RATED = ("finished", "requests", "tokens")


@dataclass(slots=True)
class Line:
    """One row of the display: a model, one of its shards, or all models."""

    name: str
    done: int
    total: int
    in_flight: int
    tests_per_s: float
    requests_per_s: float
    qps_limit: float
    tokens_per_min: float
    rate_limited: int
    retries: int
    infra_errors: int
    eta_s: float | None
    dead: str | None = None


class Rates:
    """Recent rates of shard counters, from samples of the last `window_s` seconds."""

    def __init__(self, window_s: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, dict[tuple[str, str], tuple[int, ...]]]] = deque(
            maxlen=1024
        )

    def sample(self, shards: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[float]]:
        """Take a sample; per (model, shard): finished tests, requests, tokens per second."""
        now = self.clock()
        counts = {(s["model"], s["shard"]): _counters(s) for s in shards}
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        then, old = self._samples[0]
        span = now - then
        zero = (0,) * len(_RATED)
        return {
            key: [
                max(0.0, (a - b) / span) if span > 0 else 0.0
                for a, b in zip(value, old.get(key, zero), strict=True)
            ]
            for key, value in counts.items()
        }


def _counters(shard: Mapping[str, Any]) -> tuple[int, ...]:
    finished = int(shard["done"]) + int(shard["infra_errors"])
    return (finished, int(shard["requests"]), int(shard.get("tokens", 0)))


def _line(
    name: str,
    shards: Sequence[Mapping[str, Any]],
    rates: Sequence[list[float]],
    *,
    of_shard: bool = False,
) -> Line:
    done = sum(int(s["done"]) + int(s["infra_errors"]) for s in shards)
    # what is left is what the shards still hold: their queues and the tests running now
    left = sum(int(s["queued"]) + int(s["in_flight"]) for s in shards)
    planned = sum(int(s["planned"]) for s in shards)
    # A model's total is its plan; a shard's is what it did plus what it holds: stealing moves
    # work between shards, so a shard's own plan is no bound on what it does.
    total = done + left if of_shard else max(planned, done + left)
    tests_per_s = sum(r[0] for r in rates)
    eta = max(0.0, left / tests_per_s) if tests_per_s > 0 else None
    dead = [s["dead"] for s in shards if s.get("dead")]
    return Line(
        name=name,
        done=done,
        total=total,
        in_flight=sum(int(s["in_flight"]) for s in shards),
        tests_per_s=tests_per_s,
        requests_per_s=sum(r[1] for r in rates),
        qps_limit=sum(float(s["qps"]) for s in shards if not s.get("dead")),
        tokens_per_min=60 * sum(r[2] for r in rates),
        rate_limited=sum(int(s["rate_limited"]) for s in shards),
        retries=sum(int(s["retries"]) for s in shards),
        infra_errors=sum(int(s["infra_errors"]) for s in shards),
        eta_s=0.0 if left == 0 else eta,
        dead=dead[0] if dead and len(dead) == len(shards) else None,
    )


def progress_lines(
    shards: Sequence[Mapping[str, Any]], rates: Mapping[tuple[str, str], list[float]]
) -> tuple[Line, list[tuple[Line, list[Line]]]]:
    """The totals line, then each model's line with its shards' lines (models case-insensitive)."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for shard in shards:
        by_model.setdefault(shard["model"], []).append(shard)
    zero = [0.0] * len(_RATED)

    def rated(group: Sequence[Mapping[str, Any]]) -> list[list[float]]:
        return [rates.get((s["model"], s["shard"]), zero) for s in group]

    models = []
    for model in sorted(by_model, key=model_key):
        group = by_model[model]
        children = [_line(f"  {s['shard']}", [s], rated([s]), of_shard=True) for s in group]
        models.append((_line(model, group, rated(group)), children))
    label = f"all {len(by_model)} models" if len(by_model) != 1 else "all"
    totals = _line(label, shards, rated(shards))
    # models run side by side: everything is done when the slowest model is
    etas = [line.eta_s for line, _ in models if not line.dead]
    totals.eta_s = None if None in etas else max((e or 0.0 for e in etas), default=0.0)
    return totals, models


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds <= 0:
        return "done"
    seconds = math.ceil(seconds)  # 0.2 s left is 0:01, not 0:00
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _count(value: float) -> str:
    """A large count in a few characters: 950, 12.3k, 7.9M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def progress_table(
    shards: Sequence[Mapping[str, Any]],
    rates: Mapping[tuple[str, str], list[float]] | None = None,
    *,
    height: int = 30,
    elapsed_s: float | None = None,
) -> Table:
    """The display: totals first, then a row per model; shard rows while `height` lines allow,
    dead shards always (their reason in the caption)."""
    totals, models = progress_lines(shards, rates or {})
    # header (2 lines) + totals + models + caption: what is left is for shard rows
    room = height - 4 - len(models) - (1 if any(c.dead for _, cs in models for c in cs) else 0)
    all_shards = sum(len(cs) for _, cs in models if len(cs) > 1)
    show_shards = all_shards <= room
    title = f"{_eta(elapsed_s)[:8]} elapsed" if elapsed_s is not None else None
    cached = sum(int(s.get("cached", 0)) for s in shards)
    if cached and title is not None:
        title += f" · {cached} requests answered from the cache"
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
        title=title,
        title_justify="left",
    )
    for header in ("model / shard", "done", "%", "tests/s", "req/s/limit", "tok/min"):
        table.add_column(header, justify="left" if header == "model / shard" else "right")
    for header in ("429s", "retries", "infra", "ETA"):
        table.add_column(header, justify="right", no_wrap=True)
    table.columns[0].overflow = "ellipsis"
    table.columns[0].no_wrap = True

    def add(line: Line, style: str | None) -> None:
        name = shorten(line.name, 24)
        table.add_row(
            name + (" ✗" if line.dead else ""),
            f"{line.done}/{line.total}",
            pct(line.done / line.total, 0) if line.total else "–",
            _number(line.tests_per_s),
            f"{_number(line.requests_per_s)}/{line.qps_limit:g}",
            _count(line.tokens_per_min),
            str(line.rate_limited),
            str(line.retries),
            str(line.infra_errors),
            "dead" if line.dead else _eta(line.eta_s),
            style=style,
        )

    add(totals, "bold cyan")
    dead: list[str] = []
    for line, children in models:
        add(line, "bold")
        for child in children:
            if child.dead:
                dead.append(f"{child.name.strip()}: {shorten(child.dead, 60)}")
            if (show_shards and len(children) > 1) or child.dead:
                add(child, "red" if child.dead else None)
    if dead:
        table.caption = "dead: " + "; ".join(dead)
        table.caption_justify = "left"
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

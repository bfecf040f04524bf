"""The progress display as a rich table: the totals row first, then a row per model.

The totals row is the first row, so it stays on screen; shard rows are shown while they fit the
screen, dead shards always, with their reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.table import Table

from .columns import shorten, shorten_distinct
from .progress_lines import Line, progress_lines
from .rows import pct


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

    names = shorten_distinct([totals.name, *(ln.name for m, cs in models for ln in (m, *cs))], 24)

    def add(line: Line, style: str | None) -> None:
        name = names[line.name]
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

"""The `run` command: options → run_evaluation → summary table and exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from .._loop import run as run_loop
from ..config import Settings, load_config
from ..engine.engine import Engine
from ..errors import ConfigError
from ..exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ..logs import check_level, configure_logging, redact
from ..planner import Plan
from ..report.columns import shorten_distinct
from ..report.progress import live_progress
from ..report.tables import shorten, table_width, write_report
from ..runner import RunReport, prepare, run_evaluation
from .options import run_options


def shard_table(report: RunReport) -> Table:
    """What each shard did in this run: the topology made visible."""
    table = Table(
        title="shards in this run",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
    )
    for col in (
        "model",
        "shard",
        "tests",
        "stolen",
        "requests",
        "429s",
        "retries",
        "infra",
        "state",
    ):
        table.add_column(
            col, justify="left" if col in ("model", "shard", "state") else "right", no_wrap=True
        )
    previous = None
    shards = report.summary.shards
    models = shorten_distinct((row["model"] for row in shards), 24)
    names = shorten_distinct((row["shard"] for row in shards), 24)
    for row in shards:
        table.add_row(
            "" if row["model"] == previous else models[row["model"]],
            names[row["shard"]],
            str(row["done"]),
            str(row["stolen"]),
            str(row["requests"]),
            str(row["rate_limited"]),
            str(row["retries"]),
            str(row["infra_errors"]),
            "dead: " + shorten(redact(row["dead"]), 30) if row["dead"] else "ok",
        )
        previous = row["model"]
    return table


def run_command(args: argparse.Namespace) -> int:
    from .commands import out_from_args
    from .main import INTERRUPTED

    settings = Settings()
    out = out_from_args(args)
    level = args.log_level or settings.log_level
    try:
        check_level(level)
    except ValueError as exc:
        raise ConfigError(f"$ULTRA_ASYNC_LOG_LEVEL: {exc}") from None
    options = run_options(
        args,
        simulate=args.simulate,
        out=out,
        fresh=args.fresh,
        providers=Path(args.providers) if args.providers else None,
        buffer_size=args.buffer_size,
        retry_errors=args.retry_errors,
        rerun_changed=args.rerun_changed,
        transcripts=args.transcripts,
        cache=args.cache,
        cache_dir=args.cache_dir,
        max_cost=args.max_cost,
    )
    # Everything that can refuse the run is checked before a single file is written.
    config = load_config(args.providers, settings)
    prepared = prepare(options, config)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # the live display shows progress; the console only needs what goes wrong
        configure_logging(
            level,
            log_file=out / "run.log",
            console=sys.stderr,
            console_level=None if args.log_level else "warning",
        )
    except OSError as exc:
        print(
            f"error: cannot write to the output directory {out}: {exc.strerror}; "
            "choose another --out or fix its permissions",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # the same width rule as `report`: the terminal's, at most 100 columns into a file or pipe
    console = Console(width=table_width(sys.stdout), highlight=False)

    def progress(engine: Engine, plan: Plan) -> contextlib.AbstractAsyncContextManager[Any]:
        if args.quiet:
            return contextlib.nullcontext()
        return live_progress(engine, plan, console=console)

    try:
        report = run_loop(
            run_evaluation(
                options, config=config, handle_signals=True, progress=progress, prepared=prepared
            )
        )
    except asyncio.CancelledError:
        # a second Ctrl-C/SIGTERM: in-flight tests were cancelled, the journal was flushed
        console.print(INTERRUPTED, highlight=False)
        return EXIT_INTERRUPTED
    summary = report.summary
    if report.planned == 0 and not summary.interrupted:
        console.print(
            f"nothing to do: all {report.skipped} tests of this matrix are already in "
            f"{report.out}/ (`report --out {report.out}` shows them; --fresh starts over)",
            soft_wrap=True,
        )
        return EXIT_OK
    if not args.quiet:
        console.print(shard_table(report))
    if report.database.exists():
        # the same table `report` prints: one renderer for model × prompt type results
        write_report(orjson.loads(report.database.read_bytes()), sys.stdout, "table")
    errors = ", ".join(
        f"{count} {label}"
        for count, label in (
            (summary.infra_errors, "infra errors"),
            (summary.request_errors, "request errors"),
            (summary.evaluate_errors, "evaluate errors"),
        )
        if count
    )
    console.print(
        f"{summary.completed} tests completed{', ' + errors if errors else ''}, "
        f"{report.skipped} already done before this run, {summary.wall_s:.1f}s; "
        f"{summary.requests} requests, {summary.cached} cached, {summary.rate_limited} 429s, "
        f"{summary.retries} retries. "
        f"Results in {report.out}/",
        highlight=False,
    )
    sim_line = _sim_line(report.sim_stats) if report.sim_stats is not None else None
    if sim_line and not args.quiet:
        console.print(f"simulator: {sim_line}")
    for line in error_lines(summary.error_reasons):
        console.print(line, highlight=False, markup=False)
    if report.changed:
        more = f" (first: {', '.join(report.changed[:3])})"
        console.print(
            f"{len(report.changed)} journaled tests belong to cases that changed since{more}; "
            "their old results are kept. Rerun them with --rerun-changed.",
            highlight=False,
            markup=False,
        )
    if summary.cost_capped:
        console.print(
            f"stopped taking tests at --max-cost {args.max_cost:g} (spent {summary.cost:.4g})",
            highlight=False,
        )
    if summary.interrupted:
        console.print(INTERRUPTED, highlight=False)
        return EXIT_INTERRUPTED
    if summary.infra_errors:
        console.print(
            f"{summary.infra_errors} tests hit infrastructure errors; "
            "run the same command again to retry them"
        )
        return EXIT_FAILED
    return EXIT_OK


#: what to do about each kind of error, said once after the reasons
_ADVICE = {
    "infra_error": "the API kept failing: run the same command again to retry these",
    "request_error": "the API refused the request (4xx): final; --retry-errors reruns them",
    "evaluate_error": "the suite's evaluate failed: fix it, then rerun with --retry-errors",
}


def error_lines(reasons: dict[str, int], limit: int = 5) -> list[str]:
    """Tests that ended without a result, by kind and cause with counts, and what to do."""
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for key, count in reasons.items():
        kind, _, reason = key.partition(": ")
        by_kind.setdefault(kind, []).append((count, reason))
    lines = []
    for kind, causes in sorted(by_kind.items()):
        total = sum(c for c, _ in causes)
        lines.append(f"{total} {kind.replace('_', ' ')}s — {_ADVICE.get(kind, '')}:")
        for count, reason in sorted(causes, reverse=True)[:limit]:
            lines.append(f"  {count} × {reason}")
        if len(causes) > limit:
            lines.append(f"  … and {len(causes) - limit} other causes (see run.log)")
    return lines


def _sim_line(stats: dict[str, Any]) -> str | None:
    """The simulator's counters in words; None when it served nothing."""
    total = stats.get("total")
    if not isinstance(total, dict) or not total.get("requests"):
        return None
    line = f"{total['requests']} requests, {total.get('rate_limited', 0)} answered 429"
    keys = stats.get("keys")
    if isinstance(keys, dict) and keys:
        per_key = (f"{name} {c.get('requests', 0)}" for name, c in sorted(keys.items()))
        line += "; per key: " + ", ".join(per_key)
    return line

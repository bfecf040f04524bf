"""The `run` command: options → run_evaluation → summary table and exit code."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ..config import Settings
from ..engine.engine import Engine
from ..exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ..logs import configure_logging
from ..planner import MATRIX_OPTIONS, Plan
from ..report.progress import live_progress
from ..report.tables import write_report
from ..runner import RunOptions, RunReport, run_evaluation


def shard_table(report: RunReport) -> Table:
    """What each shard did in this run: the topology made visible."""
    table = Table(title="shards in this run", title_justify="left")
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
    for row in report.summary.shards:
        table.add_row(
            row["model"],
            row["shard"],
            str(row["done"]),
            str(row["stolen"]),
            str(row["requests"]),
            str(row["rate_limited"]),
            str(row["retries"]),
            str(row["infra_errors"]),
            "dead: " + row["dead"] if row["dead"] else "ok",
        )
    return table


def run_command(args: argparse.Namespace) -> int:
    settings = Settings()
    out = Path(args.out) if args.out is not None else settings.out
    level = args.log_level or settings.log_level
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
    options = RunOptions(
        **{name: getattr(args, name) for name in MATRIX_OPTIONS},
        simulate=args.simulate,
        seed=args.seed,
        out=out,
        fresh=args.fresh,
        providers=Path(args.providers) if args.providers else None,
        buffer_size=args.buffer_size,
        max_cost=args.max_cost,
    )
    console = Console() if sys.stdout.isatty() else Console(width=140)

    def progress(engine: Engine, plan: Plan) -> contextlib.AbstractAsyncContextManager[Any]:
        if args.quiet:
            return contextlib.nullcontext()
        return live_progress(engine, plan, console=console)

    report = asyncio.run(run_evaluation(options, handle_signals=True, progress=progress))
    summary = report.summary
    if not args.quiet:
        console.print(shard_table(report))
    if report.database.exists():
        # the same table `report` prints: one renderer for model × prompt type results
        write_report(orjson.loads(report.database.read_bytes()), sys.stdout, "table")
    console.print(
        f"{summary.completed} tests completed, {summary.infra_errors} infra errors, "
        f"{report.skipped} already done before this run, {summary.wall_s:.1f}s; "
        f"{summary.requests} requests, {summary.rate_limited} 429s, {summary.retries} retries. "
        f"Results in {report.out}/",
        highlight=False,
    )
    if report.sim_stats is not None and not args.quiet:
        console.print(f"simulator: {_sim_line(report.sim_stats)}", highlight=False)
    if summary.request_errors:
        console.print(
            f"{summary.request_errors} tests were refused by the API for good (request_error: "
            "content filter, context length, invalid request); they are final, with the "
            "provider's reason in results.jsonl",
            highlight=False,
        )
    if summary.cost_capped:
        console.print(
            f"stopped taking tests at --max-cost {args.max_cost:g} (spent {summary.cost:.4g})",
            highlight=False,
        )
    if summary.interrupted:
        console.print("interrupted: run the same command again to finish the remaining tests")
        return EXIT_INTERRUPTED
    if summary.infra_errors:
        console.print(
            f"{summary.infra_errors} tests hit infrastructure errors; "
            "run the same command again to retry them"
        )
        return EXIT_FAILED
    return EXIT_OK


def _sim_line(stats: dict[str, Any]) -> str:
    per_key = stats.get("keys", stats)
    parts = []
    if isinstance(per_key, dict):
        for name, counts in sorted(per_key.items()):
            if isinstance(counts, dict) and "requests" in counts:
                parts.append(f"{name}={counts['requests']}")
    return "requests per key: " + ", ".join(parts) if parts else str(stats)[:300]

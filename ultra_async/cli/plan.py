"""The `plan` and `validate` commands: the shard table and its least duration; the config check."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from ..config import Config, Settings, load_config
from ..exitcodes import EXIT_OK, EXIT_USAGE
from ..planner import Plan
from .options import run_options


def config_from_args(args: argparse.Namespace) -> Config:
    settings = Settings()
    return load_config(args.providers, settings)


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """One row per shard; the route is a key index or a deployment, never the key."""
    rows = []
    for sp in plan.shards:
        s = sp.shard
        row: dict[str, Any] = {"model": s.model, "shard": s.name, "provider": s.route.provider}
        if s.route.deployment is not None:
            row["deployment"] = s.route.deployment
        else:
            row["key_index"] = s.route.key_index
        row["key_env"] = s.route.key_env
        row["workers"] = _limit(s.workers.start, s.workers.max)
        row["qps"] = _limit(s.qps.start, s.qps.max)
        row["items"] = len(sp.items)
        rows.append(row)
    return rows


def _limit(start: float, maximum: float) -> int | float | str:
    if start == float("inf"):
        return "unlimited"

    def fmt(x: float) -> int | float:
        return int(x) if x == int(x) else x

    return fmt(start) if start == maximum else f"{fmt(start)}->{fmt(maximum)}"


def cmd_plan(args: argparse.Namespace) -> int:
    from ..runner import plan_only

    config = config_from_args(args)
    plan = plan_only(run_options(args), config)
    rows = plan_rows(plan)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    from ..report.estimate import cost_estimate, cost_line, duration, estimate
    from .commands import out_from_args

    expected = estimate(plan, config, args.requests_per_test)
    table = Table(title=f"{plan.total} tests in {len(rows)} shards", title_justify="left")
    for col in (
        "model", "shard", "provider", "route", "key variable", "workers", "qps", "items", "≥ time"
    ):  # fmt: skip
        right = col in ("workers", "qps", "items", "≥ time")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        route = row.get("deployment") or f"key {row['key_index']}"
        table.add_row(
            row["model"],
            row["shard"],
            row["provider"],
            route,
            row["key_env"],
            str(row["workers"]),
            str(row["qps"]),
            str(row["items"]),
            duration(expected.shard_seconds[f"{row['model']}/{row['shard']}"]),
        )
    console = Console(width=max(160, _terminal_width()))
    console.print(table)
    if plan.total:
        console.print(
            f"expected duration: at least {duration(expected.seconds)} at the configured request "
            f"limits ({expected.requests:.0f} requests at ~{args.requests_per_test:g} per test; "
            f"limited by {expected.bound_by}); latency and retries add to it",
            highlight=False,
        )
        out = out_from_args(args)
        line = cost_line(cost_estimate(plan, config, out), out)
        if line is not None:
            console.print(line, highlight=False)
    return EXIT_OK


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 120


def cmd_validate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    envs = config.key_envs()
    missing = set(config.missing_keys())
    malformed = config.malformed_keys()
    print(
        f"{config.path}: valid ({len(config.models)} models, "
        f"{len(config.data.providers)} providers)"
    )
    for key, var in envs.items():
        state = "missing" if var in missing else "MALFORMED" if var in malformed else "present"
        users = [m for m, spec in config.models.items() if key in spec.keys]
        print(f"  key {key:<18} ${var:<26} {state:<8} used by {len(users)} model(s)")
    if missing:
        print(
            f"{len(missing)} API key variable(s) unset: {', '.join(sorted(missing))}; "
            "set them to run against the real APIs, or use --simulate"
        )
    for line in malformed.values():
        print(line, file=sys.stderr)
    return EXIT_USAGE if malformed else EXIT_OK

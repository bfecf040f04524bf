"""Command line: parse arguments, load the config, call the library; exit codes. No business logic.

Exit codes: 0 success, 1 the run finished with problems, 2 bad input (config, flags),
130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..config import Config, Settings, load_config
from ..errors import ConfigError, PlanError, UltraAsyncError
from ..exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ..logs import redact
from ..planner import Plan
from .args import (
    EXIT_CODES_HELP,
    MAX_BUFFER_SIZE,
    Parser,
    directory,
    file_path,
    log_level,
    whole_number,
)
from .options import add_suite_options, run_options

Handler = Callable[[argparse.Namespace], int]
INTERRUPTED = "interrupted: run the same command again to finish the remaining tests"


def _add_providers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--providers",
        metavar="PATH",
        type=file_path,
        default=None,
        help="providers.yaml to use (default: $ULTRA_ASYNC_PROVIDERS or ./providers.yaml)",
    )


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

    from ..report.estimate import duration, estimate

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


#: subcommand name → (help, add-arguments, handler). Later modules add entries here.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(
    name: str, help: str
) -> Callable[
    [Callable[[argparse.ArgumentParser], Handler]], Callable[[argparse.ArgumentParser], Handler]
]:
    """Register a subcommand: the decorated function adds its arguments and returns its handler."""

    def register(
        setup: Callable[[argparse.ArgumentParser], Handler],
    ) -> Callable[[argparse.ArgumentParser], Handler]:
        holder: dict[str, Handler] = {}

        def add(parser: argparse.ArgumentParser) -> None:
            holder["handler"] = setup(parser)

        COMMANDS[name] = (help, add, lambda args: holder["handler"](args))
        return setup

    return register


@command("plan", "print the shard table for a test matrix")
def _plan(parser: argparse.ArgumentParser) -> Handler:
    _add_providers(parser)
    add_suite_options(parser)
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--requests-per-test",
        type=float,
        default=4.0,
        metavar="N",
        help="average requests per test for the expected duration (default: 4, what the "
        "workflow suite sends)",
    )
    return cmd_plan


@command("validate", "check providers.yaml and report which API keys are set")
def _validate(parser: argparse.ArgumentParser) -> Handler:
    _add_providers(parser)
    return cmd_validate


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=directory,
        default=None,
        help="results directory: master_database.json, results.jsonl, run.log "
        "(default: $ULTRA_ASYNC_OUT or results/)",
    )


def out_from_args(args: argparse.Namespace) -> Path:
    """--out, else $ULTRA_ASYNC_OUT, else results/; ConfigError for an empty variable."""
    if args.out is not None:
        return Path(args.out)
    if os.environ.get("ULTRA_ASYNC_OUT", "x").strip() == "":
        raise ConfigError("$ULTRA_ASYNC_OUT is empty; unset it or name a directory")
    return Settings().out


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


@command("run", "run an evaluation (resumes from the journal in --out)")
def _run(parser: argparse.ArgumentParser) -> Handler:
    _add_providers(parser)
    add_suite_options(parser)
    _add_out(parser)
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run against the embedded simulator instead of the real APIs (no keys needed)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start a new database; the old database and journal are moved to a backup folder",
    )
    parser.add_argument(
        "--buffer-size",
        type=whole_number(1, MAX_BUFFER_SIZE),
        default=3,
        help="results per database write (default: 3)",
    )
    parser.add_argument(
        "--retry-errors",
        action="store_true",
        help="also rerun tests that ended as request errors (a 4xx such as a content filter) "
        "or evaluate errors (the suite's code failed); a plain rerun keeps them",
    )
    parser.add_argument(
        "--rerun-changed",
        action="store_true",
        help="rerun tests whose case (labels or data) changed since they were journaled",
    )
    add_recording_options(parser)
    parser.add_argument(
        "--max-cost",
        type=_positive_float,
        default=None,
        help="stop taking new tests once the responses cost this much (from the models' "
        "price in providers.yaml); a rerun continues",
    )
    parser.add_argument("--quiet", action="store_true", help="no live progress display")
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=None,
        help="debug, info, warning, error (default: info)",
    )

    def handler(args: argparse.Namespace) -> int:
        from .run import run_command

        return run_command(args)

    return handler


def add_recording_options(parser: argparse.ArgumentParser) -> None:
    """`--transcripts`, `--cache`, `--cache-dir` (docs/transcripts-and-cache.md)."""
    parser.add_argument(
        "--transcripts",
        choices=("all", "failures", "none"),
        default="all",
        help="conversations kept beside the journal: all, failures (tests not a completed "
        "full success) or none (default: all)",
    )
    parser.add_argument(
        "--cache",
        choices=("off", "use", "refresh", "only"),
        default="use",
        help="response cache: use (answer repeated requests from it), refresh (send and store "
        "anew), only (never send; a miss is an infra error), off (default: use)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="a response cache shared across results directories (default: one in --out)",
    )


@command("show", "print one test's transcript: messages, replies, tokens, failed attempts")
def _show(parser: argparse.ArgumentParser) -> Handler:
    from .cache import add_show_arguments, run_show

    add_show_arguments(parser)
    return run_show


@command("cache", "response cache: stats, or prune entries no journal refers to")
def _cache(parser: argparse.ArgumentParser) -> Handler:
    from .cache import add_cache_arguments, run_cache

    add_cache_arguments(parser)
    return run_cache


@command("report", "success, scores and errors by model × any dimension; --html writes the viewer")
def _report(parser: argparse.ArgumentParser) -> Handler:
    from ..report.tables import add_report_arguments, run_report

    add_report_arguments(parser)
    return run_report


@command("view", "serve the results viewer (heatmap, tests, transcripts, progress) on 127.0.0.1")
def _view(parser: argparse.ArgumentParser) -> Handler:
    from ..report.view import add_view_arguments, run_view

    add_view_arguments(parser)
    return run_view


@command("db", "check, rebuild, repair, migrate or export the results database")
def _db(parser: argparse.ArgumentParser) -> Handler:
    from .db import add_db_arguments, run_db

    add_db_arguments(parser)
    return run_db


@command("serve-sim", "run the embedded OpenAI/Azure-compatible simulator standalone")
def _serve_sim(parser: argparse.ArgumentParser) -> Handler:
    from ..sim import add_serve_sim_arguments, run_serve_sim

    _add_providers(parser)
    add_serve_sim_arguments(parser, providers_option=False)
    return run_serve_sim


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m ultra_async",
        description="Run large LLM evaluations against rate-limited model APIs.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add, _handler) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add(sp)
    return parser


def reference_markdown() -> str:
    """docs/cli.md: the `--help` of every command, at a fixed width so the text is stable."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        parts = [
            "# Command-line reference",
            "",
            "Generated from `--help` (`make docs`); a test keeps it in step with the code.",
            "",
            "```text",
            parser.format_help().rstrip(),
            "```",
        ]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, command_parser in sub.choices.items():
            parts += ["", f"## {name}", "", "```text", command_parser.format_help().rstrip(), "```"]
            nested = [
                a for a in command_parser._actions if isinstance(a, argparse._SubParsersAction)
            ]
            for action in nested:
                for sub_name, sub_parser in action.choices.items():
                    parts += [
                        "",
                        f"### {name} {sub_name}",
                        "",
                        "```text",
                        sub_parser.format_help().rstrip(),
                        "```",
                    ]
        return "\n".join(parts) + "\n"
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (a test's capture): nothing will flush it


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Objects alive after start-up live for the whole run: keep them out of every collection,
    # so a full GC pass does not stall the event loop for tens of milliseconds.
    gc.collect()
    gc.freeze()
    _help, _add, handler = COMMANDS[args.command]
    try:
        return handler(args)
    except (ConfigError, PlanError) as exc:
        text = f"error: {exc}" if isinstance(exc, PlanError) else str(exc)
        print(redact(text), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `report | head`: the reader has what it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and end quietly with 1, as rich does.
        _silence_stdout()
        return EXIT_FAILED
    except UltraAsyncError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        # a bug: its traceback helps, but without local variables and without a secret
        print(redact(traceback.format_exc()).rstrip(), file=sys.stderr)
        return EXIT_FAILED

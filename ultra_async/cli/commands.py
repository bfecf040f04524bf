"""The subcommands: each one's arguments and handler, in the order `--help` lists them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError
from .args import (
    MAX_BUFFER_SIZE,
    bounded_number,
    directory,
    file_path,
    log_level,
    whole_number,
)
from .options import add_recording_options, add_suite_options
from .plan import cmd_plan, cmd_validate

Handler = Callable[[argparse.Namespace], int]


def _add_providers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--providers",
        metavar="PATH",
        type=file_path,
        default=None,
        help="providers.yaml to use (default: $ULTRA_ASYNC_PROVIDERS or ./providers.yaml)",
    )


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
        type=bounded_number(0.01, 1000),
        default=4.0,
        metavar="N",
        help="average requests per test for the expected duration (default: 4, what the "
        "workflow suite sends)",
    )
    _add_out(parser)
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

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

from ..config import Settings
from ..errors import ConfigError, PlanError, UltraAsyncError
from ..exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ..logs import redact
from .args import (
    EXIT_CODES_HELP,
    MAX_BUFFER_SIZE,
    Parser,
    directory,
    file_path,
    log_level,
    whole_number,
)
from .options import add_recording_options, add_suite_options
from .plan import cmd_plan, cmd_validate

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

"""The whole parser, built from the registered commands, and docs/cli.md from its `--help`."""

from __future__ import annotations

import argparse
import os

from .args import EXIT_CODES_HELP, Parser
from .commands import COMMANDS


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

"""Argument types and the parser of every command: a bad value is one line naming the flag.

argparse prints the whole usage before its error; with a dozen options that buries the one
line that matters, so `Parser.error` prints only that line (and exits 2, as argparse does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..exitcodes import EXIT_USAGE
from ..logs import LEVEL_NAMES

#: tests per matrix cell; the plan's own limit (planner.MAX_PLAN_ITEMS) applies as well
MAX_INSTANCES = 1_000_000
MAX_BUFFER_SIZE = 100_000
#: the top-level --help ends with this (and so docs/cli.md)
EXIT_CODES_HELP = """\
exit codes:
  0      success
  1      the command could not do its job (a run ended with infra errors: rerun to retry
         them; a write failed; the results directory is unusable)
  2      bad input: a flag, providers.yaml, an API key or settings variable; one line per
         problem, nothing written
  3-7    db check found a problem (see `db check --help`)
  130    stopped by Ctrl-C or SIGTERM (a second one cancels in-flight tests at once);
         the same command resumes

API keys are read from the environment variables providers.yaml names; a key holding
whitespace or a control character is refused (exit 2), never stripped."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `prog: error: argument --x: why`."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"must be between {minimum:,} and {maximum:,} (got {value:,})"
            )
        return value

    parse.__name__ = "whole number"
    return parse


def bounded_number(minimum: float, maximum: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [minimum, maximum]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not minimum <= value <= maximum:  # also refuses nan
            raise argparse.ArgumentTypeError(
                f"must be a number between {_plain(minimum)} and {_plain(maximum)} (got {text})"
            )
        return value

    parse.__name__ = "number"
    return parse


def _plain(number: float) -> str:
    return f"{int(number):,}" if number == int(number) else f"{number:g}"


def output_file(text: str) -> Path:
    """An argparse type: a file to write, named by a path that is not empty."""
    return Path(file_path(text))


def directory(text: str) -> Path:
    """An argparse type: a path that is not empty (an empty --out would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty; name a directory, e.g. results")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("must not contain a NUL character")
    return Path(text)


def file_path(text: str) -> str:
    """An argparse type: a file path that is not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty; name a file")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("must not contain a NUL character")
    return text


def log_level(text: str) -> str:
    """An argparse type: one of the log levels, in any case."""
    if text.lower() not in LEVEL_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r}; use one of {', '.join(LEVEL_NAMES)}"
        )
    return text.lower()

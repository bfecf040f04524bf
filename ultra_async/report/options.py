"""The `report` command's options."""

from __future__ import annotations

import argparse

from ..cli.args import directory, output_file
from .columns import DEFAULT_COLUMNS
from .formats import FORMATS
from .rows import DEFAULT_MIN_TESTS

__all__ = ["add_report_arguments"]


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `report` options to `parser`."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=directory,
        default=None,
        help="results directory holding master_database.json "
        "(default: $ULTRA_ASYNC_OUT or results/; results/demo after `make run`)",
    )
    parser.add_argument(
        "--by",
        metavar="DIMENSION",
        default=None,
        help="the dimension beside the model, any of the database's (workflow: prompt_type, "
        "tool_success_rate, difficulty, task_type); the others are summed over "
        "(default: the first)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument(
        "--columns",
        metavar="LIST",
        default=None,
        help="table columns, comma-separated field names or headers, or all "
        f"(default: {','.join(DEFAULT_COLUMNS)})",
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        type=output_file,
        default=None,
        help="also write a PNG: a heatmap of --metric and error categories per model "
        "(needs matplotlib: pip install 'ultra_async[analysis]')",
    )
    parser.add_argument(
        "--html",
        metavar="FILE",
        type=output_file,
        default=None,
        help="also write the results viewer as one self-contained HTML file",
    )
    parser.add_argument(
        "--metric",
        default="success_rate",
        help="what the heatmap shows: any rate, score or avg_ field of the database "
        "(default: success_rate; full_success_rate and weighted_success_score tell models "
        "apart more sharply)",
    )
    parser.add_argument(
        "--min-tests",
        metavar="N",
        type=_non_negative_int,
        default=DEFAULT_MIN_TESTS,
        help=f"mark cells with fewer completed tests than N (default: {DEFAULT_MIN_TESTS})",
    )


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value

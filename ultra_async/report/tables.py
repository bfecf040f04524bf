"""The `report` command: success, scores, coverage and errors by model × one dimension.

Rows are built from the database's leaves: their counters and stored sums are added per
(model, value) cell and rendered with the same code that renders the database, so a cell
aggregated across prompt types, rates or task types is exact, never an average of percentages.
Infra errors stay in their own column; they are outside `total` and every rate.

Exit codes: 0 ok; 1 the plot could not be written (matplotlib missing, path not writable);
3 database missing or unreadable; 4 database of another schema.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..config import Settings
from ..errors import DatabaseError
from ..exitcodes import EXIT_FAILED, EXIT_OK, EXIT_SCHEMA, EXIT_UNREADABLE
from ..results.stats import SCHEMA_VERSION
from ..results.storage import DATABASE_FILE, JOURNAL_FILE, read_database
from ..suites.workflow.dimensions import ERROR_CATEGORIES
from .plots import METRICS, write_plot
from .rows import (
    BY_DIMENSIONS,
    DEFAULT_MIN_TESTS,
    REPORT_FIELDS,
    group_leaves,
    overall,
    report_rows,
)

__all__ = [
    "BY_DIMENSIONS",
    "FORMATS",
    "REPORT_FIELDS",
    "add_report_arguments",
    "group_leaves",
    "render_report",
    "report_rows",
    "run_report",
    "write_plot",
    "write_report",
]

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `report` options to `parser`."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="results directory holding master_database.json "
        "(default: $ULTRA_ASYNC_OUT or results/)",
    )
    parser.add_argument(
        "--by",
        choices=BY_DIMENSIONS,
        default="prompt_type",
        help="the dimension beside the model; the others are summed over (default: prompt_type)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        type=Path,
        default=None,
        help="also write a PNG: a heatmap of --metric and error categories per model "
        "(needs matplotlib: pip install 'ultra_async[analysis]')",
    )
    parser.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default="success_rate",
        help="what the heatmap shows (default: success_rate; full_success_rate and "
        "weighted_success_score tell models apart more sharply)",
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


# ---- output formats -------------------------------------------------------------------------

_SHORT_CATEGORY = {
    "tool_call_format": "format",
    "timeout": "timeout",
    "max_turns": "max turns",
    "tool_selection": "selection",
    "parameter_config": "params",
    "sequence_order": "order",
    "dependency": "depend.",
    "other": "other",
}
#: (header, field, format) of the human-readable columns after model and `by`
_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tests", "total", "count"),
    ("success", "success_rate", "pct"),
    ("full", "full_success_rate", "pct"),
    ("partial", "partial_success_rate", "pct"),
    ("weighted", "weighted_success_score", "score"),
    ("coverage", "tool_coverage_rate", "pct"),
    ("workflow", "avg_workflow_score", "score"),
    ("final", "avg_final_score", "score"),
    ("infra", "infra_errors", "count"),
    ("errors", "total_errors", "count"),
    *((_SHORT_CATEGORY[c], f"{c}_error_share", "share") for c in ERROR_CATEGORIES),
)
_NONE = "–"


def _cell(row: Mapping[str, Any], field: str, kind: str) -> str:
    value = row[field]
    if kind == "count":
        mark = "*" if field == "total" and row["few_tests"] else ""
        return f"{value}{mark}"
    # A rate over zero tests (or a share of zero errors) is undefined, not 0 %.
    if row["total"] == 0 or (kind == "share" and row["total_errors"] == 0):
        return _NONE
    return {"score": f"{value:.3f}", "share": f"{value:.0%}"}.get(kind, f"{value:.1%}")


def _headers(by: str) -> list[str]:
    return ["model", by.replace("_", " "), *(header for header, _, _ in _COLUMNS)]


def _text_rows(rows: Iterable[Mapping[str, Any]], by: str) -> list[list[str]]:
    return [[row["model"], row[by], *(_cell(row, f, k) for _, f, k in _COLUMNS)] for row in rows]


def _footnote(db: Mapping[str, Any], min_tests: int) -> str:
    total = overall(db)
    return (
        f"{total['total']} tests, {total['success_rate']:.1%} success; "
        f"{total['infra_errors']} infra errors (shown apart, not counted as tests); "
        f"* fewer than {min_tests} tests. format … other: each error category's share of the "
        "cell's errors."
    )


def write_table(
    rows: Sequence[Mapping[str, Any]], by: str, footnote: str, title: str, stream: TextIO
) -> None:
    """A rich table; as wide as needed when the output is not a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for i, header in enumerate(_headers(by)):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=True)
    previous = None
    for row, cells in zip(rows, _text_rows(rows, by), strict=True):
        if row["model"] == previous:
            cells[0] = ""
        previous = row["model"]
        table.add_row(*cells, style="dim" if row["few_tests"] else None)
    # A file or a pipe gets every column at full width; a terminal gets what fits.
    width = None if stream.isatty() else 320
    # Names are data, not rich markup: a "[...]" in a model name or path is printed as is.
    console = Console(file=stream, width=width, highlight=False, markup=False)
    # Title and footnote printed apart from the table are not padded to its width.
    console.print(title, style="bold")
    console.print(table)
    console.print(footnote)


def write_csv(rows: Sequence[Mapping[str, Any]], by: str, stream: TextIO) -> None:
    """A header line, then one line per row; `few_tests` is `true` or `false`."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["model", by, *REPORT_FIELDS, "few_tests"])
    for row in rows:
        values = [row["model"], row[by], *(row[f] for f in REPORT_FIELDS)]
        writer.writerow([*values, "true" if row["few_tests"] else "false"])


def write_json(rows: Sequence[Mapping[str, Any]], stream: TextIO) -> None:
    """The rows as one JSON array (indented)."""
    stream.write(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode() + "\n")


def write_markdown(
    rows: Sequence[Mapping[str, Any]], by: str, footnote: str, title: str, stream: TextIO
) -> None:
    """A GitHub-flavoured Markdown table with a title line and a footnote."""
    headers = _headers(by)
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join(":---" if i < 2 else "---:" for i in range(len(headers))) + "|")
    for cells in _text_rows(rows, by):
        escaped = (c.replace("|", "\\|") for c in cells)
        lines.append("| " + " | ".join(escaped) + " |")
    lines += ["", footnote]
    stream.write("\n".join(lines) + "\n")


def write_report(
    db: Mapping[str, Any],
    stream: TextIO,
    fmt: str = "table",
    by: str = "prompt_type",
    min_tests: int = DEFAULT_MIN_TESTS,
    *,
    title: str | None = None,
) -> None:
    """Write the report in one of FORMATS to `stream`."""
    # Everything is computed before the first write: a damaged database prints nothing.
    rows = report_rows(db, by, min_tests)
    footnote = _footnote(db, min_tests)
    title = title or f"results by model × {by}"
    if fmt == "csv":
        write_csv(rows, by, stream)
    elif fmt == "json":
        write_json(rows, stream)
    elif fmt == "markdown":
        write_markdown(rows, by, footnote, title, stream)
    elif fmt == "table":
        write_table(rows, by, footnote, title, stream)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def render_report(
    db: Mapping[str, Any],
    fmt: str = "table",
    by: str = "prompt_type",
    min_tests: int = DEFAULT_MIN_TESTS,
    *,
    title: str | None = None,
) -> str:
    """The report as text (a table as wide as it needs)."""
    stream = io.StringIO()
    write_report(db, stream, fmt, by, min_tests, title=title)
    return stream.getvalue()


# ---- the command ----------------------------------------------------------------------------


def load_report_database(out: Path) -> dict[str, Any]:
    """The database in `out`; DatabaseError saying what to do when it is missing or unreadable."""
    path = out / DATABASE_FILE
    if not path.exists():
        if (out / JOURNAL_FILE).exists():
            hint = f"the journal is there, so `python -m ultra_async db repair --out {out}`"
            hint += " rebuilds it"
        else:
            hint = f"run an evaluation first: `python -m ultra_async run --out {out} ...`"
        raise DatabaseError(f"no results database at {path}; {hint}")
    return read_database(path)


def _print_cache_line(out: Path) -> None:
    """The response cache in one line under the table (docs/transcripts-and-cache.md)."""
    from ..errors import UltraAsyncError
    from ..results.cache_admin import cache_report

    try:
        cache = cache_report(out)
    except (UltraAsyncError, OSError):
        return
    if cache is not None:
        print(cache.line())


def run_report(args: argparse.Namespace) -> int:
    """Run the `report` command in `args`; returns the exit code."""
    out = Path(args.out) if args.out is not None else Settings().out
    path = out / DATABASE_FILE
    try:
        db = load_report_database(out)
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    version = db.get("version")
    if version != SCHEMA_VERSION:
        print(
            f"error: {path} has schema {version!r}, not {SCHEMA_VERSION}; "
            f"run `python -m ultra_async db migrate --out {out}` to import it",
            file=sys.stderr,
        )
        return EXIT_SCHEMA
    try:
        write_report(
            db,
            sys.stdout,
            args.format,
            by=args.by,
            min_tests=args.min_tests,
            title=f"{path} by {args.by}",
        )
        if args.format == "table":
            _print_cache_line(out)
    except DatabaseError as exc:
        print(f"error: {exc}; run `python -m ultra_async db check --out {out}`", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.plot is not None:
        try:
            write_plot(db, Path(args.plot), args.by, min_tests=args.min_tests, metric=args.metric)
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:
            print(f"error: could not write {args.plot}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK

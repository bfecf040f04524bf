"""The `report` command: success, scores and errors by model × any dimension of the database.

Rows are built from the database's leaves: their counters and stored sums are added per
(model, value) cell and rendered with the same code that renders the database, so a cell
aggregated across prompt types, rates or task types is exact, never an average of percentages.
Infra errors stay in their own column; they are outside `total` and every rate.

The table fits the terminal (100 columns at most when not a terminal): a compact set of
columns by default, `--columns` for more. Rates come with their number of tests and a 95 %
Wilson interval, and a percentage never shows 100 % for less.

Exit codes: 0 ok; 1 the plot or HTML could not be written (matplotlib missing, path not
writable); 2 unknown --by, --metric or --columns; 3 database missing or unreadable; 4 database
of another schema.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from ..config import Settings
from ..errors import DatabaseError
from ..exitcodes import EXIT_FAILED, EXIT_OK, EXIT_SCHEMA, EXIT_UNREADABLE, EXIT_USAGE
from ..results.stats import SCHEMA_VERSION
from ..results.storage import DATABASE_FILE, JOURNAL_FILE, read_database
from .columns import (
    DEFAULT_COLUMNS,
    Column,
    choose_columns,
    shorten,
    table_width,
    write_table,
)
from .columns import (
    footnote as _footnote,
)
from .columns import (
    headers as _headers,
)
from .columns import (
    text_rows as _text_rows,
)
from .plots import write_plot
from .rows import (
    BY_DIMENSIONS,
    DEFAULT_MIN_TESTS,
    REPORT_FIELDS,
    dimensions_of,
    group_leaves,
    metrics_of,
    report_rows,
)

__all__ = [
    "BY_DIMENSIONS",
    "DEFAULT_COLUMNS",
    "FORMATS",
    "REPORT_FIELDS",
    "add_report_arguments",
    "group_leaves",
    "render_report",
    "report_rows",
    "run_report",
    "shorten",
    "table_width",
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
        type=Path,
        default=None,
        help="also write a PNG: a heatmap of --metric and error categories per model "
        "(needs matplotlib: pip install 'ultra_async[analysis]')",
    )
    parser.add_argument(
        "--html",
        metavar="FILE",
        type=Path,
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


# ---- formats -------------------------------------------------------------------------------


def write_csv(rows: Sequence[Mapping[str, Any]], by: str, stream: TextIO) -> None:
    """A header line (every field of a row), then one line per row; `few_tests` is true/false."""
    writer = csv.writer(stream, lineterminator="\n")
    fields = list(rows[0]) if rows else ["model", by, *REPORT_FIELDS, "few_tests"]
    writer.writerow(fields)
    for row in rows:
        values = [row.get(f) for f in fields]
        writer.writerow(["true" if v is True else "false" if v is False else v for v in values])


def write_json(rows: Sequence[Mapping[str, Any]], stream: TextIO) -> None:
    """The rows as one JSON array (indented)."""
    stream.write(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode() + "\n")


def write_markdown(
    rows: Sequence[Mapping[str, Any]],
    by: str,
    footnote: str,
    title: str,
    stream: TextIO,
    columns: Sequence[Column],
) -> None:
    """A GitHub-flavoured Markdown table with a title line and a footnote."""
    headers = _headers(by, columns)
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join(":---" if i < 2 else "---:" for i in range(len(headers))) + "|")
    for cells in _text_rows(rows, by, columns):
        escaped = (c.replace("|", "\\|") for c in cells)
        lines.append("| " + " | ".join(escaped) + " |")
    lines += ["", footnote]
    stream.write("\n".join(lines) + "\n")


def write_report(
    db: Mapping[str, Any],
    stream: TextIO,
    fmt: str = "table",
    by: str | None = None,
    min_tests: int = DEFAULT_MIN_TESTS,
    *,
    title: str | None = None,
    columns: str | None = None,
) -> None:
    """Write the report in one of FORMATS to `stream`.

    `by` defaults to the database's first dimension; `columns` (comma-separated, or `all`)
    chooses the table and Markdown columns; csv and json always hold every field.
    """
    # Everything is computed before the first write: a damaged database prints nothing.
    by = by or dimensions_of(db)[0]
    rows = report_rows(db, by, min_tests)
    chosen = choose_columns(rows, by, columns)
    footnote = _footnote(db, min_tests, chosen)
    title = title or f"results by model × {by}"
    if fmt == "csv":
        write_csv(rows, by, stream)
    elif fmt == "json":
        write_json(rows, stream)
    elif fmt == "markdown":
        write_markdown(rows, by, footnote, title, stream, chosen)
    elif fmt == "table":
        write_table(rows, by, footnote, title, stream, chosen, fit=columns is None)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def render_report(
    db: Mapping[str, Any],
    fmt: str = "table",
    by: str | None = None,
    min_tests: int = DEFAULT_MIN_TESTS,
    *,
    title: str | None = None,
    columns: str | None = None,
) -> str:
    """The report as text (a table at most 100 columns wide)."""
    stream = io.StringIO()
    write_report(db, stream, fmt, by, min_tests, title=title, columns=columns)
    return stream.getvalue()


# ---- the command ----------------------------------------------------------------------------


DEMO_DIR = "demo"


def find_results(out: Path, explicit: bool) -> Path:
    """Where the results are: `out`, or `out/demo` (what `make run` writes) when `out` was not
    given and holds no database. DatabaseError naming the folders that hold one otherwise."""
    if (out / DATABASE_FILE).exists() or (out / JOURNAL_FILE).exists():
        return out
    demo = out / DEMO_DIR
    if not explicit and (demo / DATABASE_FILE).exists():
        return demo
    return out


def load_report_database(out: Path) -> dict[str, Any]:
    """The database in `out`; DatabaseError saying what to do when it is missing or unreadable."""
    path = out / DATABASE_FILE
    if not path.exists():
        if (out / JOURNAL_FILE).exists():
            hint = f"the journal is there, so `python -m ultra_async db repair --out {out}`"
            hint += " rebuilds it"
        else:
            found = sorted(str(p.parent) for p in out.glob(f"*/{DATABASE_FILE}"))[:5]
            hint = (
                f"results are in {', '.join(found)}: pass --out {found[0]}"
                if found
                else f"run an evaluation first: `python -m ultra_async run --out {out} ...` "
                "(or `make run`, which writes results/demo)"
            )
        raise DatabaseError(f"no results database at {path}; {hint}")
    return read_database(path)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


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
    out = find_results(
        Path(args.out) if args.out is not None else Settings().out, args.out is not None
    )
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
        dims = dimensions_of(db)
        by = args.by or dims[0]
        if by not in dims:
            choices = ", ".join(dims)
            return _usage(f"--by {by!r} is not a dimension of {path}; choose from {choices}")
        rows = report_rows(db, by, args.min_tests)
        metrics = metrics_of(rows[0]) if rows else [args.metric]
        if args.metric not in metrics:
            choices = ", ".join(metrics)
            return _usage(f"--metric {args.metric!r} is not in {path}; choose from {choices}")
        try:
            choose_columns(rows, by, args.columns)
        except ValueError as exc:
            return _usage(f"--columns: {exc}")
        write_report(
            db,
            sys.stdout,
            args.format,
            by=by,
            min_tests=args.min_tests,
            title=f"{path} by {by}",
            columns=args.columns,
        )
        if args.format == "table":
            _print_cache_line(out)
    except DatabaseError as exc:
        print(f"error: {exc}; run `python -m ultra_async db check --out {out}`", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.html is not None:
        from .view import write_html

        try:
            write_html(out, Path(args.html), by=by, metric=args.metric)
        except OSError as exc:
            print(f"error: could not write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"viewer written to {args.html}", file=sys.stderr)
    if args.plot is not None:
        try:
            write_plot(db, Path(args.plot), by, min_tests=args.min_tests, metric=args.metric)
        except ImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except OSError as exc:
            print(f"error: could not write {args.plot}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"plot written to {args.plot}", file=sys.stderr)
    return EXIT_OK

"""The `report` command: success, scores and errors by model × any dimension of the database.

It finds and loads the database, checks --by, --metric and --columns against it, writes the
report (`formats`) and, when asked, the viewer and the plot.

Exit codes: 0 ok; 1 the plot or HTML could not be written (matplotlib missing, path not
writable); 2 unknown --by, --metric or --columns; 3 database missing or unreadable; 4 database
of another schema.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import DatabaseError
from ..exitcodes import EXIT_FAILED, EXIT_OK, EXIT_SCHEMA, EXIT_UNREADABLE, EXIT_USAGE
from ..results.stats import SCHEMA_VERSION
from ..results.storage import DATABASE_FILE, JOURNAL_FILE, read_database
from .columns import DEFAULT_COLUMNS, choose_columns, shorten, table_width
from .formats import FORMATS, render_report, write_report
from .options import add_report_arguments
from .plots import write_plot
from .rows import (
    BY_DIMENSIONS,
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

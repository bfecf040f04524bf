"""The report in one of FORMATS: a table, CSV, JSON or Markdown.

Rows are built from the database's leaves: their counters and stored sums are added per
(model, value) cell and rendered with the same code that renders the database, so a cell
aggregated across prompt types, rates or task types is exact, never an average of percentages.
Infra errors stay in their own column; they are outside `total` and every rate.

The table fits the terminal (100 columns at most when not a terminal): a compact set of
columns by default, `--columns` for more. Rates come with their number of tests and a 95 %
Wilson interval, and a percentage never shows 100 % for less.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson

from .columns import Column, choose_columns, write_table
from .columns import footnote as _footnote
from .columns import headers as _headers
from .columns import text_rows as _text_rows
from .rows import DEFAULT_MIN_TESTS, REPORT_FIELDS, dimensions_of, report_rows

__all__ = ["FORMATS", "render_report", "write_csv", "write_json", "write_markdown", "write_report"]

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")


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

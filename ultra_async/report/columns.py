"""The columns of a report table and the terminal table itself: compact by default, fitting.

A table fits the terminal (100 columns at most when not a terminal). Numbers are never cut:
long model names give way first (cut in the middle), then the dimension's values. Rates are
printed with `pct`, which never shows 100 % for less.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from .rows import overall, pct

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
#: short headers of well-known fields; other fields are headed by their name
_HEADERS: dict[str, str] = {
    "total": "n",
    "success_rate": "success",
    "ci": "95% CI",
    "full_success_rate": "full",
    "partial_success_rate": "partial",
    "failure_rate": "failure",
    "weighted_success_score": "weighted",
    "tool_coverage_rate": "coverage",
    "avg_workflow_score": "workflow",
    "avg_final_score": "final",
    "avg_execution_time": "time s",
    "infra_errors": "infra",
    "request_errors": "req err",
    "evaluate_errors": "eval err",
    "total_errors": "errors",
    "total_tokens": "tokens",
    "total_cost": "cost",
    "cached_requests": "cached",
    **{f"{c}_error_share": short for c, short in _SHORT_CATEGORY.items()},
}
#: the compact default: what fits 100 columns beside a model name and a dimension value
DEFAULT_COLUMNS: tuple[str, ...] = (
    "total",
    "success_rate",
    "ci",
    "full_success_rate",
    "avg_final_score",
    "infra_errors",
    "total_errors",
)
_NONE = "–"


class Column:
    """One printed column: its header, the row field it shows and how it is formatted."""

    __slots__ = ("field", "header", "kind")

    def __init__(self, field: str, kind: str) -> None:
        self.field = field
        self.kind = kind
        self.header = _HEADERS.get(field) or field.removeprefix("avg_").replace("_", " ")


def _kind(field: str, value: object) -> str | None:
    if field == "ci":
        return "ci"
    if field == "total_cost":
        return "cost"
    if isinstance(value, bool) or field.endswith(("_low", "_high")):
        return None
    if isinstance(value, int):
        return "count"
    if not isinstance(value, float):
        return None
    if field.endswith("_share"):
        return "share"
    return "pct" if field.endswith("_rate") and not field.startswith("avg_") else "score"


def available_columns(rows: Sequence[Mapping[str, Any]], by: str) -> dict[str, Column]:
    """Every column the rows can show, by field name (`ci` is success's 95 % interval)."""
    columns: dict[str, Column] = {}
    template = rows[0] if rows else {}
    for name, value in template.items():
        if name in ("model", by, "few_tests"):
            continue
        kind = _kind(name, value)
        if kind is not None:
            columns[name] = Column(name, kind)
        if name == "success_rate":
            columns["ci"] = Column("ci", "ci")
    return columns


def choose_columns(
    rows: Sequence[Mapping[str, Any]], by: str, spec: str | None = None
) -> list[Column]:
    """The columns named in `spec` (comma-separated fields or headers, or `all`); the compact
    default when None. ValueError naming the choices for an unknown name."""
    available = available_columns(rows, by)
    if spec is None:
        chosen = [available[f] for f in DEFAULT_COLUMNS if f in available]
        if "avg_final_score" not in available:
            # another suite: its first mean beside the success columns
            chosen[3:3] = [c for c in available.values() if c.field.startswith("avg_")][:1]
        if "total_cost" in available and any(row.get("total_cost") for row in rows):
            chosen.append(available["total_cost"])  # models with a `price` in providers.yaml
        return chosen
    if spec.strip() == "all":
        first = [available[f] for f in DEFAULT_COLUMNS if f in available]
        return first + [c for c in available.values() if c not in first]
    by_header = {c.header: c for c in available.values()}
    chosen = []
    for name in (part.strip() for part in spec.split(",") if part.strip()):
        # the printed headers first: `success` is the rate, as in the table
        column = by_header.get(name) or available.get(name)
        if column is None:
            raise ValueError(f"unknown column {name!r}; choose from all, {', '.join(available)}")
        chosen.append(column)
    return chosen


def _cell(row: Mapping[str, Any], column: Column) -> str:
    if column.kind == "ci":
        low, high = row.get("success_rate_low"), row.get("success_rate_high")
        if low is None or high is None:
            return _NONE
        return f"{pct(low)[:-1]}–{pct(high)}"
    value = row.get(column.field)
    if column.kind == "count":
        mark = "*" if column.field == "total" and row["few_tests"] else ""
        return f"{value}{mark}"
    if column.kind == "cost":
        # money: small amounts keep their significant digits (0.00042, not 0.000)
        return f"{value:.2g}" if isinstance(value, float) and 0 < value < 1 else f"{value:.2f}"
    # A rate over zero tests (or a share of zero errors) is undefined, not 0 %.
    if value is None or row.get("total") == 0:
        return _NONE
    if column.kind == "share":
        return _NONE if not row.get("total_errors") else pct(value, 0)
    return pct(value) if column.kind == "pct" else f"{value:.3f}"


def headers(by: str, columns: Sequence[Column]) -> list[str]:
    return ["model", by.replace("_", " "), *(c.header for c in columns)]


def text_rows(
    rows: Iterable[Mapping[str, Any]], by: str, columns: Sequence[Column]
) -> list[list[str]]:
    return [[row["model"], str(row[by]), *(_cell(row, c) for c in columns)] for row in rows]


def footnote(db: Mapping[str, Any], min_tests: int, columns: Sequence[Column]) -> str:
    total = overall(db)
    text = f"{total['total']} tests"
    if "success_rate" in total and total["total"]:
        text += f", {pct(total['success_rate'])} success"
    text += (
        f"; {total.get('infra_errors', 0)} infra errors (shown apart, not counted as tests); "
        f"* fewer than {min_tests} tests; 95% CI: Wilson interval of the success rate."
    )
    if any(c.kind == "share" for c in columns):
        text += " Error categories: each one's share of the cell's errors."
    return text


def shorten(text: str, width: int | None) -> str:
    """`text` in at most `width` characters, cut in the middle: model names differ at both ends."""
    if width is None or len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


def _cut_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _cut_start(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def shorten_distinct(texts: Iterable[str], width: int | None) -> dict[str, str]:
    """Each of `texts` in at most `width` characters, told apart from the others.

    The cut goes where the names differ: in the middle (`DeepS…-0324`) unless that makes two
    alike, then at the end (`qwen2.5-72b…`), then at the start. If no cut keeps them apart,
    they are not cut: a wider table beats two rows that read the same.
    """
    names = list(dict.fromkeys(texts))
    if width is None or all(len(t) <= width for t in names):
        return {t: t for t in names}
    for cut in (shorten, _cut_end, _cut_start):
        short = {t: cut(t, width) for t in names}
        if len(set(short.values())) == len(names):
            return short
    return {t: t for t in names}


def table_width(stream: TextIO) -> int | None:
    """The width a table on `stream` may use: the terminal's, else at most 100 ($COLUMNS)."""
    if stream.isatty():
        return None
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 100
    return max(40, min(100, columns))


def write_table(
    rows: Sequence[Mapping[str, Any]],
    by: str,
    footnote: str,
    title: str,
    stream: TextIO,
    columns: Sequence[Column] | None = None,
    *,
    fit: bool = True,
) -> None:
    """A rich table that fits the terminal (100 columns at most when not a terminal).

    Numbers are never cut; long model names and dimension values are shortened with `…`.
    With `fit` false (columns asked for by name) the table is as wide as its columns need.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    columns = list(columns) if columns is not None else choose_columns(rows, by)
    texts = text_rows(rows, by, columns)

    def build(name_widths: tuple[int | None, int | None]) -> Table:
        models = shorten_distinct((cells[0] for cells in texts), name_widths[0])
        values = shorten_distinct((cells[1] for cells in texts), name_widths[1])
        # names that could not be told apart in the width were kept whole: so is the column
        widths = [
            width if all(len(t) <= (width or 0) for t in short.values()) else None
            for width, short in zip(name_widths, (models, values), strict=True)
        ]
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, show_edge=False)
        for i, header in enumerate(headers(by, columns)):
            if i < 2:
                table.add_column(
                    header,
                    justify="left",
                    overflow="ellipsis",
                    no_wrap=True,
                    max_width=widths[i],
                )
            else:
                table.add_column(header, justify="right", no_wrap=True)
        previous = None
        for row, cells in zip(rows, texts, strict=True):
            cells = [models[cells[0]], values[cells[1]], *cells[2:]]
            if row["model"] == previous:
                cells[0] = ""
            previous = row["model"]
            table.add_row(*cells, style="dim" if row["few_tests"] else None)
        return table

    # Names are data, not rich markup: a "[...]" in a model name or path is printed as is.
    console = Console(file=stream, width=table_width(stream), highlight=False, markup=False)
    from rich.measure import Measurement

    table = build((None, None))
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if not fit:
        console = Console(
            file=stream, width=max(console.width, needed), highlight=False, markup=False
        )
    elif needed > console.width:
        # Numbers are never cut: long model names give way first, then the dimension's values.
        excess = needed - console.width
        model_width = max((len(r["model"]) for r in rows), default=5)
        value_width = max((len(str(r[by])) for r in rows), default=5)
        cut_model = min(excess, max(0, model_width - 12))
        cut_value = min(excess - cut_model, max(0, value_width - 12))
        table = build((model_width - cut_model, value_width - cut_value))
    console.print(title, style="bold", overflow="fold")
    console.print(table)
    console.print(footnote, overflow="fold")

"""Rows of a report: the database's leaves summed per (model, value of one dimension).

Works for any suite. The dimensions come from the database (`dimensions_of`); a cell is
aggregated from its leaves' counters (integers) and stored sums (`sum_<metric>`, added in fixed
point), and every rate, share and mean is derived from those, so a cell that spans many leaves
is exact, never an average of percentages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..results.export import dimensions_of as path_dimensions
from ..results.export import iter_leaves
from ..suites.workflow.dimensions import DIFFICULTIES, PROMPT_TYPES, TASK_TYPES

#: the dimensions of the workflow suite (a database that names none is one)
BY_DIMENSIONS: tuple[str, ...] = ("prompt_type", "difficulty", "tool_success_rate", "task_type")
DEFAULT_MIN_TESTS = 5

#: the statistics every workflow report row has, after `model` and the `by` dimension
REPORT_FIELDS: tuple[str, ...] = (
    "total",
    "success_rate",
    "full_success_rate",
    "partial_success_rate",
    "weighted_success_score",
    "tool_coverage_rate",
    "avg_workflow_score",
    "avg_final_score",
    "infra_errors",
    "total_errors",
)

#: the order values of each workflow dimension are listed in (unknown values follow, sorted)
_ORDER: dict[str, tuple[str, ...]] = {
    "prompt_type": PROMPT_TYPES,
    "difficulty": DIFFICULTIES,
    "task_type": TASK_TYPES,
}
#: fixed-point unit of summed `sum_<metric>` fields: the sum does not depend on leaf order
_SCALE = 10**9
_Z95 = 1.959963984540054


def dimensions_of(db: Mapping[str, Any]) -> tuple[str, ...]:
    """The dimensions a report of `db` can be broken down by (its path without the model)."""
    return path_dimensions(db)[1:]


def suite_of(db: Mapping[str, Any]) -> str:
    """The suite that wrote `db` (`workflow` when the database does not say)."""
    return str(db.get("suite") or "workflow")


def _derived(name: str) -> bool:
    return (
        name.endswith(("_rate", "_share", "_score"))
        or name.startswith("avg_")
        or name in ("weighted_success_score",)
    )


def aggregate(leaves: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The statistics of the union of `leaves`, in the fields (and order) the leaves use.

    Integer fields are counters and add up; `sum_<m>` fields and other float totals
    (`total_cost`) add up exactly (fixed point);
    `<c>_rate` is counter `c` over `total`; `avg_<m>` (or `<m>` beside a `sum_<m>`) is the
    sum over `n_<m>` (the tests that reported it) where the leaves count that, else over
    `total`; `<c>_error_share` is `<c>_errors` over `total_errors`; a field that cannot be
    derived from sums is None.
    """
    names: dict[str, None] = {}
    counts: dict[str, int] = {}
    sums: dict[str, int] = {}
    for leaf in leaves:
        for name, value in leaf.items():
            names.setdefault(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if name.startswith("sum_") or (isinstance(value, float) and not _derived(name)):
                # a stored sum (`sum_<m>`, `total_cost`): added in fixed point
                if math.isfinite(value):
                    sums[name] = sums.get(name, 0) + round(value * _SCALE)
            elif isinstance(value, int) and not _derived(name):
                counts[name] = counts.get(name, 0) + value
    total = counts.get("total", 0)

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    out: dict[str, Any] = {}
    for name in names:
        if name in counts:
            out[name] = counts[name]
        elif name in sums:
            out[name] = sums[name] / _SCALE
        elif name == "weighted_success_score":
            full, partial = counts.get("full_success", 0), counts.get("partial_success", 0)
            out[name] = ratio(2 * full + partial, 2 * total)
        elif name.endswith("_error_share"):
            errors = counts.get(name.removesuffix("_share") + "s", 0)
            out[name] = ratio(errors, counts.get("total_errors", 0))
        elif f"sum_{name}" in names:
            out[name] = ratio(sums.get(f"sum_{name}", 0), _SCALE * total)
        elif name.startswith("avg_") and f"sum_{name[4:]}" in names:
            # over the tests that reported the metric (`n_<m>`; None when none did), else over
            # every test
            if f"n_{name[4:]}" in names:
                reported = counts.get(f"n_{name[4:]}", 0)
                out[name] = (
                    sums.get(f"sum_{name[4:]}", 0) / (_SCALE * reported) if reported else None
                )
            else:
                out[name] = ratio(sums.get(f"sum_{name[4:]}", 0), _SCALE * total)
        elif name.endswith("_rate") and name.removesuffix("_rate") in counts:
            out[name] = ratio(counts[name.removesuffix("_rate")], total)
        else:
            out[name] = None
    out.setdefault("total", total)
    return out


def wilson(successes: int, n: int, z: float = _Z95) -> tuple[float, float] | None:
    """The Wilson score interval of `successes` out of `n` (95 % by default); None when n = 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def rate_interval(row: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The 95 % interval of a count rate (`<c>_rate` with counter `c`); None for other metrics."""
    count = row.get(metric.removesuffix("_rate")) if metric.endswith("_rate") else None
    if not isinstance(count, int) or isinstance(count, bool):
        return None
    return wilson(count, int(row.get("total") or 0))


#: two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t (beyond 30 degrees of freedom, to 3 decimals,
    from the first Cornish-Fisher term)."""
    return _T95[df - 1] if df <= len(_T95) else _Z95 + (_Z95**3 + _Z95) / (4 * df)


def mean_interval(row: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The 95 % t-interval of a mean `avg_<m>` from the row's `n_<m>` and `sumsq_<m>`.

    None for other fields, for fewer than two tests that reported the metric, and for databases
    written before `sumsq_<m>` was kept.
    """
    name = metric.removeprefix("avg_")
    n, squares, mean = row.get(f"n_{name}"), row.get(f"sumsq_{name}"), row.get(metric)
    if not metric.startswith("avg_") or not isinstance(n, int) or n < 2:
        return None
    if not isinstance(squares, int | float) or not isinstance(mean, int | float):
        return None
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = t95(n - 1) * math.sqrt(variance / n)
    return mean - half, mean + half


def interval(row: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The 95 % interval of a rate (Wilson) or of a metric's mean (t); None for other fields."""
    return rate_interval(row, metric) or mean_interval(row, metric)


def metrics_of(row: Mapping[str, Any]) -> list[str]:
    """The fields of a row a heatmap can show: rates, scores and means (numbers, not counters)."""
    return [
        name
        for name, value in row.items()
        if isinstance(value, float)
        and not name.endswith(("_share", "_low", "_high"))
        and (name.endswith(("_rate", "_score")) or name.startswith("avg_"))
    ]


def group_leaves(
    db: Mapping[str, Any], keys: Sequence[str]
) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """The leaves of every combination of `keys` (dimension names, `model` included)."""
    dims = path_dimensions(db)
    unknown = [key for key in keys if key not in dims]
    if unknown:
        raise ValueError(f"by must be one of {', '.join(dims[1:])}, not {unknown[0]!r}")
    index = [dims.index(key) for key in keys]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for path, leaf in iter_leaves(db):
        groups.setdefault(tuple(path[i] for i in index), []).append(leaf)
    return groups


def model_key(model: str) -> tuple[str, str]:
    """Models listed case-insensitively (`DeepSeek` between `claude` and `gpt`)."""
    return (model.casefold(), model)


def sort_key(dimension: str, value: str) -> tuple[int, float, str]:
    """Where a value of `dimension` goes in a listing: known values in their natural order,
    numbers by value, other text case-insensitively."""
    order = _ORDER.get(dimension, ())
    if value in order:
        return (0, order.index(value), value)
    try:
        number = float(value)
    except ValueError:
        return (2, 0.0, value.casefold())
    return (1, number, value) if math.isfinite(number) else (2, 0.0, value.casefold())


def report_rows(
    db: Mapping[str, Any], by: str | None = None, min_tests: int = DEFAULT_MIN_TESTS
) -> list[dict[str, Any]]:
    """One row per (model, value of `by`): model, `by`, the aggregated fields (without raw
    `sum_`/`sumsq_` fields), `success_rate_low`/`_high` (95 % Wilson interval, None without
    tests), `avg_<m>_low`/`_high` for each counted metric (95 % t-interval, None below two
    tests), then `few_tests` (fewer than `min_tests` completed tests).

    `by` defaults to the database's first dimension (`prompt_type` for the workflow suite).
    """
    dims = dimensions_of(db)
    by = by or dims[0]
    if by not in dims:
        raise ValueError(f"by must be one of {', '.join(dims)}, not {by!r}")
    groups = group_leaves(db, ("model", by))
    rows = []
    for model, value in sorted(groups, key=lambda c: (model_key(c[0]), sort_key(by, c[1]))):
        fields = aggregate(groups[model, value])
        row: dict[str, Any] = {"model": model, by: value}
        row.update((k, v) for k, v in fields.items() if not k.startswith(("sum_", "sumsq_")))
        found = rate_interval(fields, "success_rate") if "success_rate" in fields else None
        row["success_rate_low"] = found[0] if found else None
        row["success_rate_high"] = found[1] if found else None
        for name in fields:
            if name.startswith("n_") and f"sumsq_{name[2:]}" in fields:
                # a metric's mean (counted, with its squares): its 95 % t-interval
                found = mean_interval(fields, f"avg_{name[2:]}")
                row[f"avg_{name[2:]}_low"] = found[0] if found else None
                row[f"avg_{name[2:]}_high"] = found[1] if found else None
        row["few_tests"] = fields["total"] < min_tests
        rows.append(row)
    return rows


def overall(db: Mapping[str, Any]) -> dict[str, Any]:
    """The statistics of the whole database (summed from its leaves)."""
    return aggregate(leaf for _, leaf in iter_leaves(db))


def per_model(db: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The statistics of each model, models in listing order."""
    groups = group_leaves(db, ("model",))
    return {m: aggregate(groups[(m,)]) for m in sorted((c[0] for c in groups), key=model_key)}


def pct(value: float, digits: int = 1) -> str:
    """A share as a percentage that never shows 100 % for less, nor 0 % for more."""
    text = f"{value * 100:.{digits}f}"
    step = 10.0**-digits
    if value < 1 and float(text) >= 100:
        text = f"{100 - step:.{digits}f}"
    elif value > 0 and float(text) <= 0:
        text = f"{step:.{digits}f}"
    return text + "%"

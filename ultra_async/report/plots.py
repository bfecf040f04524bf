"""The report's picture: a heatmap of one metric and the error categories of each model, one PNG.

matplotlib is an optional extra (`pip install 'ultra_async[analysis]'`). It is imported when a
plot is drawn, and only its object-oriented API is used with the Agg canvas: drawing never
touches pyplot's global state or the backend of a notebook that calls it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .rows import dimensions_of, metrics_of, model_key, pct, per_model, report_rows, sort_key

INSTALL_HINT = "install the analysis extra: pip install 'ultra_async[analysis]'"
_DPI = 120


def _matplotlib() -> tuple[ModuleType, ModuleType, ModuleType]:
    """matplotlib, its Figure module and its Agg backend; ImportError saying how to get them."""
    try:
        # The package first: a submodule left in sys.modules must not hide a missing package.
        mpl = importlib.import_module("matplotlib")
        figure = importlib.import_module("matplotlib.figure")
        agg = importlib.import_module("matplotlib.backends.backend_agg")
    except ImportError:
        raise ImportError(f"--plot needs matplotlib; {INSTALL_HINT}") from None
    return mpl, figure, agg


#: titles of well-known heatmap metrics; any other rate, score or avg_ field is titled by name
METRICS: dict[str, str] = {
    "success_rate": "success rate",
    "full_success_rate": "full success rate",
    "weighted_success_score": "weighted success score",
    "avg_workflow_score": "mean workflow score",
    "avg_final_score": "mean final score",
    "tool_coverage_rate": "tool coverage",
}


def metric_title(metric: str) -> str:
    """How a metric is named on a plot."""
    return METRICS.get(metric) or metric.replace("avg_", "mean ").replace("_", " ")


def write_plot(
    db: Mapping[str, Any],
    path: Path,
    by: str | None = None,
    *,
    min_tests: int = 5,
    metric: str = "success_rate",
) -> None:
    """Write one PNG: `metric` by model × `by` (heatmap) and error categories per model.

    Each heatmap cell shows its value and its number of tests (`n`); cells with fewer than
    `min_tests` completed tests are marked with `*`, cells with none are grey. Models are listed
    case-insensitively. The bars stack each category's share of a model's errors.
    Needs matplotlib (ImportError naming the extra to install otherwise).
    """
    by = by or dimensions_of(db)[0]
    rows = report_rows(db, by, min_tests)
    if rows and metric not in metrics_of(rows[0]):
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(metrics_of(rows[0]))}")
    mpl, figure_module, agg = _matplotlib()
    models = sorted({row["model"] for row in rows}, key=model_key)
    values = sorted({row[by] for row in rows}, key=lambda v: sort_key(by, v))
    models_stats = per_model(db)

    height = 2.5 + 0.5 * max(len(models), 1)
    bars_height = 1.5 + 0.35 * max(len(models), 1)
    fig = figure_module.Figure(
        figsize=(max(9.0, 3.5 + 1.0 * len(values)), height + bars_height),
        layout="constrained",
    )
    agg.FigureCanvasAgg(fig)
    heat_ax, bar_ax = fig.subplots(2, 1, height_ratios=[height, bars_height])
    if not rows:
        for ax in (heat_ax, bar_ax):
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center")
            ax.set_axis_off()
    else:
        infra = sum(r.get("infra_errors") or 0 for r in rows)
        _heatmap(mpl, fig, heat_ax, rows, models, values, by, min_tests, infra, metric)
        _error_bars(bar_ax, models, models_stats)
    fig.savefig(Path(path), format="png", dpi=_DPI)


def _is_share(metric: str) -> bool:
    return metric.endswith("_rate") and not metric.startswith("avg_")


def _heatmap(
    mpl: ModuleType,
    fig: Any,
    ax: Any,
    rows: list[dict[str, Any]],
    models: list[str],
    values: list[str],
    by: str,
    min_tests: int,
    infra: int,
    metric: str,
) -> None:
    cells = {(row["model"], row[by]): row for row in rows}
    title = metric_title(metric)
    grid: list[list[float]] = []
    for model in models:
        line = []
        for value in values:
            row = cells.get((model, value))
            number = row.get(metric) if row and row["total"] else None
            line.append(float(number) if isinstance(number, int | float) else math.nan)
        grid.append(line)
    finite = [v for line in grid for v in line if not math.isnan(v)]
    unit = _is_share(metric) or all(0.0 <= v <= 1.0 for v in finite)
    cmap = mpl.colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    vmin, vmax = (0.0, 1.0) if unit else (min(finite, default=0.0), max(finite, default=1.0))
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for y, model in enumerate(models):
        for x, value in enumerate(values):
            row = cells.get((model, value))
            if row is None:
                continue
            number = row.get(metric)
            if not row["total"] or not isinstance(number, int | float):
                label = "–"
            else:
                label = pct(number, 0) if _is_share(metric) else f"{number:.2f}"
            label += ("*" if row["few_tests"] else "") + f"\nn={row['total']}"
            ax.text(x, y, label, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(values)), labels=values, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), labels=models)
    ax.set_xlabel(by.replace("_", " "))
    ax.set_title(
        f"{title} by model × {by.replace('_', ' ')} "
        f"(n tests per cell; * fewer than {min_tests}; {infra} infra errors not counted)",
        fontsize=10,
    )
    ticker = importlib.import_module("matplotlib.ticker")
    formatter = ticker.FuncFormatter(lambda x, _pos: pct(x, 0)) if _is_share(metric) else None
    fig.colorbar(image, ax=ax, label=title, format=formatter)


def _categories(stats: Mapping[str, Mapping[str, Any]]) -> list[str]:
    first = next(iter(stats.values()), {})
    return [name.removesuffix("_error_share") for name in first if name.endswith("_error_share")]


def _error_bars(ax: Any, models: list[str], stats: Mapping[str, Mapping[str, Any]]) -> None:
    """One horizontal bar per model: its errors' categories stacked, as shares of the errors."""
    categories = _categories(stats)
    lefts = [0.0] * len(models)
    colors = importlib.import_module("matplotlib").colormaps["tab10"]
    for i, category in enumerate(categories):
        shares = [float(stats[m].get(f"{category}_error_share") or 0.0) for m in models]
        ax.barh(range(len(models)), shares, left=lefts, label=category, color=colors(i % 10))
        for y, (left, share) in enumerate(zip(lefts, shares, strict=True)):
            if share >= 0.08:
                ax.text(left + share / 2, y, pct(share, 0), ha="center", va="center", fontsize=7)
        lefts = [a + b for a, b in zip(lefts, shares, strict=True)]
    labels = [f"{m} ({stats[m].get('total_errors', 0)} errors)" for m in models]
    ax.set_yticks(range(len(models)), labels=labels)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("share of the model's errors")
    ax.set_title("error categories per model", fontsize=10)
    if categories:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="category")

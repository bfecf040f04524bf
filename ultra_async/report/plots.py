"""The report's picture: a success-rate heatmap and the error categories of each model, one PNG.

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

from ..results.stats import node_fields
from ..suites.workflow.dimensions import ERROR_CATEGORIES
from .rows import group_leaves, report_rows, sort_key

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


#: heatmap metrics (row fields in [0, 1]) and their titles
METRICS: dict[str, str] = {
    "success_rate": "success rate",
    "full_success_rate": "full success rate",
    "weighted_success_score": "weighted success score",
    "avg_workflow_score": "mean workflow score",
    "avg_final_score": "mean final score",
    "tool_coverage_rate": "tool coverage",
}


def write_plot(
    db: Mapping[str, Any],
    path: Path,
    by: str = "prompt_type",
    *,
    min_tests: int = 5,
    metric: str = "success_rate",
) -> None:
    """Write one PNG: `metric` by model × `by` (heatmap) and error categories per model.

    Heatmap cells with fewer than `min_tests` completed tests are marked with `*`; cells with
    no completed test are grey. The bars are each category's share of a model's errors.
    Needs matplotlib (ImportError naming the extra to install otherwise).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    mpl, figure_module, agg = _matplotlib()
    rows = report_rows(db, by, min_tests)
    models = sorted({row["model"] for row in rows})
    values = sorted({row[by] for row in rows}, key=lambda v: sort_key(by, v))
    per_model = {cell[0]: node_fields(v) for cell, v in group_leaves(db, ("model",)).items()}

    height = 2.5 + 0.45 * max(len(models), 1)
    fig = figure_module.Figure(
        figsize=(max(9.0, 3.5 + 0.9 * max(len(values), len(models))), height + 4.5),
        layout="constrained",
    )
    agg.FigureCanvasAgg(fig)
    heat_ax, bar_ax = fig.subplots(2, 1, height_ratios=[height, 4.5])
    if not rows:
        for ax in (heat_ax, bar_ax):
            ax.text(0.5, 0.5, "no results yet", ha="center", va="center")
            ax.set_axis_off()
    else:
        infra = sum(r["infra_errors"] for r in rows)
        _heatmap(mpl, fig, heat_ax, rows, models, values, by, min_tests, infra, metric)
        _error_bars(bar_ax, models, per_model)
    fig.savefig(Path(path), format="png", dpi=_DPI)


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
    title = METRICS[metric]
    grid: list[list[float]] = []
    for model in models:
        line = []
        for value in values:
            row = cells.get((model, value))
            line.append(row[metric] if row and row["total"] else math.nan)
        grid.append(line)
    cmap = mpl.colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for y, model in enumerate(models):
        for x, value in enumerate(values):
            row = cells.get((model, value))
            if row is None:
                continue
            label = f"{row[metric]:.0%}" if row["total"] else "–"
            label += "*" if row["few_tests"] else ""
            ax.text(x, y, label, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(values)), labels=values, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), labels=models)
    ax.set_xlabel(by.replace("_", " "))
    ax.set_title(
        f"{title} by model × {by.replace('_', ' ')} "
        f"(* fewer than {min_tests} tests; {infra} infra errors not counted)",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, label=title, format="{x:.0%}")


def _error_bars(ax: Any, models: list[str], per_model: Mapping[str, Mapping[str, Any]]) -> None:
    width = 0.8 / len(ERROR_CATEGORIES)
    for i, category in enumerate(ERROR_CATEGORIES):
        offset = (i - (len(ERROR_CATEGORIES) - 1) / 2) * width
        shares = [per_model[m][f"{category}_error_share"] for m in models]
        ax.bar([x + offset for x in range(len(models))], shares, width, label=category)
    labels = [f"{m}\n({per_model[m]['total_errors']} errors)" for m in models]
    ax.set_xticks(range(len(models)), labels=labels, rotation=30, ha="right")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("share of the model's errors")
    ax.set_title("error categories per model", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="category")

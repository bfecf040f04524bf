"""Reports that fit: width, rounding, intervals, any suite's dimensions, quiet pipes, the demo."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.fixtures.factory import completed
from tests.fixtures.generic_db import LANGUAGES, MODELS, generic_database, leaves
from tests.test_report import document, hand_made
from ultra_async.report.columns import shorten_distinct
from ultra_async.report.plots import write_plot
from ultra_async.report.rows import (
    aggregate,
    dimensions_of,
    metrics_of,
    pct,
    report_rows,
    wilson,
)
from ultra_async.report.tables import add_report_arguments, render_report, run_report
from ultra_async.results.export import iter_leaves, leaf_rows, to_dataframe
from ultra_async.results.storage import DATABASE_FILE
from ultra_async.suites.workflow.dimensions import PROMPT_TYPES
from ultra_async.suites.workflow.item import workflow_item as WorkItem

REPO = Path(__file__).resolve().parents[1]
#: 13 models with long names, every prompt type (the longest is 28 characters)
WIDE_MODELS = [f"provider-{i:02d}/a-rather-long-model-name-v{i}" for i in range(13)]


def wide_document(models: int = 13) -> dict[str, object]:
    names = WIDE_MODELS if models == 13 else [f"m{i}" for i in range(models)]
    items = [
        WorkItem(m, p, 0.8, "easy", "simple_task", i)
        for m in names
        for p in PROMPT_TYPES
        for i in range(2)
    ]
    return document(completed(item, seed=3) for item in items)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ultra_async", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    return parser.parse_args(argv)


# ---- rounding and intervals ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.9995, "99.9%"), (0.99999, "99.9%"), (1.0, "100.0%"), (0.5, "50.0%"), (0.0, "0.0%"),
     (0.0004, "0.1%"), (0.123456, "12.3%")],
)  # fmt: skip
def test_percentages_never_show_100_for_less(value: float, text: str) -> None:
    assert pct(value) == text


def test_percentages_without_decimals() -> None:
    assert pct(0.996, 0) == "99%" and pct(1.0, 0) == "100%" and pct(0.004, 0) == "1%"


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson(5, 10) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson(0, 10) or (0, 0)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson(10, 10) or (0, 0)
    assert round(low, 4) == 0.7225 and high == 1.0
    assert wilson(0, 0) is None


def test_rows_carry_the_success_interval() -> None:
    rows = report_rows(document(hand_made()))
    row = next(r for r in rows if r["total"] == 24)
    assert (row["success_rate_low"], row["success_rate_high"]) == wilson(row["success"], 24)
    empty = next(r for r in rows if r["total"] == 0)
    assert empty["success_rate_low"] is None


# ---- width --------------------------------------------------------------------------------


def test_report_fits_100_columns_when_piped(tmp_path: Path) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(wide_document()))
    result = run_cli("report", "--out", str(tmp_path), env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    # every model and every prompt type is there, and no number was cut
    assert sum("flawed_logical_inconsistency" in line for line in lines) == 13
    for line in lines:
        if "flawed_semantic_drift" in line:
            cells = line.split()
            assert cells[-7].rstrip("*").isdigit() and cells[-6].endswith("%"), line


def test_report_fits_80_columns_and_defaults_to_100(tmp_path: Path) -> None:
    db = wide_document()
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(db))
    narrow = run_cli("report", "--out", str(tmp_path), env={"COLUMNS": "80"})
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    unset = subprocess.run(
        [sys.executable, "-m", "ultra_async", "report", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )  # fmt: skip
    assert max(len(line) for line in unset.stdout.splitlines()) <= 100


def test_columns_all_shows_every_field_uncut() -> None:
    text = render_report(document(hand_made()), columns="all")
    header = next(line for line in text.splitlines() if line.lstrip().startswith("model"))
    for name in ("n", "success", "95% CI", "weighted", "coverage", "workflow", "format", "other"):
        assert f" {name} " in f" {header} ", name
    assert "…" not in text


def test_columns_by_name_and_unknown_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = render_report(document(hand_made()), columns="n,weighted,failure_rate")
    header = next(line for line in text.splitlines() if line.lstrip().startswith("model"))
    assert header.split() == ["model", "prompt", "type", "n", "weighted", "failure"]
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(document(hand_made())))
    assert run_report(args("--out", str(tmp_path), "--columns", "n,nonsense")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nonsense" in err and "choose from" in err


# ---- any suite ----------------------------------------------------------------------------


def test_dimensions_come_from_the_database() -> None:
    assert dimensions_of(generic_database()) == ("language", "level")
    assert dimensions_of(document(hand_made())) == (
        "prompt_type",
        "tool_success_rate",
        "difficulty",
        "task_type",
    )


def test_leaves_of_a_two_dimension_database() -> None:
    db = generic_database()
    found = {path: leaf for path, leaf in iter_leaves(db)}
    assert found == leaves()
    rows = list(leaf_rows(db))
    assert list(rows[0])[:3] == ["model", "language", "level"] and "avg_accuracy" in rows[0]


def test_dataframe_of_a_two_dimension_database() -> None:
    frame = to_dataframe(generic_database())
    assert frame.shape[0] == len(leaves())
    assert list(frame.columns[:3]) == ["model", "language", "level"]


@pytest.mark.parametrize("by", ["language", "level"])
def test_generic_rows_equal_a_hand_computation(by: str) -> None:
    rows = report_rows(generic_database(), by)
    index = 1 if by == "language" else 2
    for row in rows:
        cell = [v for k, v in leaves().items() if k[0] == row["model"] and k[index] == row[by]]
        total = sum(c["total"] for c in cell)
        assert row["total"] == total
        assert row["success_rate"] == sum(c["success"] for c in cell) / total
        assert row["avg_accuracy"] == pytest.approx(sum(c["sum_accuracy"] for c in cell) / total)
        assert row["request_errors"] == sum(c["request_errors"] for c in cell)
        assert row["evaluate_errors"] == sum(c["evaluate_errors"] for c in cell)
        refusals = sum(c["refusal_errors"] for c in cell)
        errors = sum(c["total_errors"] for c in cell)
        assert row["refusal_error_share"] == (refusals / errors if errors else 0.0)
    # the stored overall_stats of each model × language node agree with the aggregation
    if by == "language":
        db = generic_database()
        for row in rows:
            stored = db["models"][row["model"]]["by_language"][row[by]]["overall_stats"]
            assert row["avg_accuracy"] == pytest.approx(stored["avg_accuracy"])
            assert row["success_rate"] == pytest.approx(stored["success_rate"])


def test_models_are_listed_case_insensitively() -> None:
    rows = report_rows(generic_database(), "language")
    assert list(dict.fromkeys(r["model"] for r in rows)) == ["Alpha-7B", "beta-large", "zeta-small"]
    assert [r["language"] for r in rows[:3]] == sorted(LANGUAGES)


def test_metrics_of_a_generic_row() -> None:
    row = report_rows(generic_database(), "level")[0]
    assert set(metrics_of(row)) == {"success_rate", "full_success_rate", "avg_accuracy"}


def test_aggregate_of_nothing_is_zero() -> None:
    assert aggregate([]) == {"total": 0}


def test_report_command_on_a_generic_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(generic_database()))
    assert run_report(args("--out", str(tmp_path))) == 0
    out = capsys.readouterr().out
    assert "by language" in out and "accuracy" in out
    assert all(model in out for model in MODELS)
    assert (
        run_report(args("--out", str(tmp_path), "--by", "level", "--metric", "avg_accuracy")) == 0
    )
    capsys.readouterr()
    assert run_report(args("--out", str(tmp_path), "--by", "prompt_type")) == 2
    err = capsys.readouterr().err
    assert "language, level" in err and err.count("\n") == 1
    assert run_report(args("--out", str(tmp_path), "--metric", "avg_final_score")) == 2
    assert "avg_accuracy" in capsys.readouterr().err


def test_plot_of_a_generic_database(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    write_plot(generic_database(), path, "level", metric="avg_accuracy")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="avg_accuracy"):
        write_plot(generic_database(), path, "level", metric="avg_final_score")


# ---- pipes and the demo -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_report_into_a_closed_pipe_is_silent(tmp_path: Path, fmt: str) -> None:
    # far more output than a pipe buffers (64 KiB), so the writer meets the closed pipe
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(wide_document(models=80)))
    command = [sys.executable, "-m", "ultra_async", "report", "--out", str(tmp_path)]
    command += ["--format", fmt]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # what `head -1` does
        err = process.stderr.read()
        code = process.wait(timeout=60)
    # no traceback; 1 like any interrupted output
    assert err == b"" and code == 1


def test_report_finds_the_demo_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / DATABASE_FILE).write_bytes(orjson.dumps(document(hand_made())))
    monkeypatch.setenv("ULTRA_ASYNC_OUT", str(tmp_path))
    assert run_report(args()) == 0
    assert "demo" in capsys.readouterr().out
    # an explicit --out is taken at its word, and the error says where results are
    assert run_report(args("--out", str(tmp_path))) == 3
    err = capsys.readouterr().err
    assert f"pass --out {tmp_path / 'demo'}" in err


def test_columns_by_header_mean_what_the_table_prints() -> None:
    text = render_report(document(hand_made()), columns="success,full_success")
    row = next(line for line in text.splitlines() if " baseline " in line)
    cells = row.split()
    assert cells[-2].endswith("%") and cells[-1].isdigit()  # the rate, then the counter


def test_rows_default_to_the_first_dimension() -> None:
    assert "language" in report_rows(generic_database())[0]
    assert "prompt_type" in report_rows(document(hand_made()))[0]


def test_float_totals_are_summed_and_rates_derived() -> None:
    leaves = [
        {
            "total": 2,
            "success": 1,
            "success_rate": 0.5,
            "total_cost": 0.1,
            "sum_x": 0.3,
            "avg_x": 0.15,
        },
        {
            "total": 3,
            "success": 3,
            "success_rate": 1.0,
            "total_cost": 0.2,
            "sum_x": 0.9,
            "avg_x": 0.3,
        },
    ]
    cell = aggregate(leaves)
    assert cell["total_cost"] == pytest.approx(0.3) and cell["success_rate"] == 0.8
    assert cell["avg_x"] == pytest.approx(1.2 / 5) and cell["sum_x"] == pytest.approx(1.2)


def test_cut_names_stay_told_apart() -> None:
    qwen = [f"qwen2.5-{size}-instruct" for size in ("3b", "7b", "14b", "32b", "72b")]
    items = [
        WorkItem(m, p, 0.8, "easy", "simple_task", i)
        for m in [*qwen, "DeepSeek-V3-0324", "DeepSeek-R1-0528", *WIDE_MODELS[:6]]
        for p in PROMPT_TYPES[:3]
        for i in range(2)
    ]
    text = render_report(document(completed(item, seed=5) for item in items))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    names = [line.split("  ")[0] for line in lines if line[:1].strip() and "  " in line]
    shown = [n for n in names if n.startswith(("qwen", "DeepS", "provi"))]
    # cut in the middle all qwen models would read `qwen2.…truct`: every row names its model
    assert len(shown) == len(set(shown)) == 5 + 2 + 6, shown
    assert shorten_distinct(["ab-x-yz", "ab-y-yz"], 5) == {"ab-x-yz": "ab-x…", "ab-y-yz": "ab-y…"}
    assert shorten_distinct(["x-ab-yz", "y-ab-yz"], 5) == {"x-ab-yz": "x-…yz", "y-ab-yz": "y-…yz"}
    assert shorten_distinct(["aaa-1", "aaa-2", "short"], None)["aaa-1"] == "aaa-1"

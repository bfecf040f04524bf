"""The `report` command: rows aggregated from the database's leaves, every format, the plot."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.factory import completed, infra
from ultra_async.config import load_config
from ultra_async.report.tables import (
    REPORT_FIELDS,
    add_report_arguments,
    render_report,
    report_rows,
    run_report,
    write_plot,
)
from ultra_async.results.db import render
from ultra_async.results.export import leaf_rows
from ultra_async.results.stats import StatsTree
from ultra_async.results.storage import DATABASE_FILE, JOURNAL_FILE, read_database, read_journal
from ultra_async.runner import RunOptions, run_evaluation
from ultra_async.suites.workflow.dimensions import ERROR_CATEGORIES
from ultra_async.suites.workflow.item import workflow_item as WorkItem
from ultra_async.types import TestResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A small matrix with three difficulties. Leaves hold different numbers of tests (1 simple_task,
# 3 data_pipeline), so averaging the leaves' percentages would give wrong numbers.
MODELS = ("gpt-4o-mini", "DeepSeek-V3-0324")
INSTANCES = {"simple_task": 1, "data_pipeline": 3}
CELLS = [
    WorkItem(m, p, r, d, t, i)
    for m in MODELS
    for p in ("optimal", "baseline")
    for r in (0.8, 0.6)
    for d in ("easy", "medium", "hard")
    for t, n in INSTANCES.items()
    for i in range(n)
]
#: gpt-4o-mini × cot has only 3 tests (a cell with few tests at --min-tests 5)
FEW = [WorkItem("gpt-4o-mini", "cot", 0.8, "easy", "simple_task", i) for i in range(3)]
#: DeepSeek × flawed_tool_misuse never completed: infra errors only
INFRA_ONLY = [
    WorkItem("DeepSeek-V3-0324", "flawed_tool_misuse", 0.8, "easy", "simple_task", i)
    for i in range(2)
]


def hand_made() -> list[TestResult]:
    results = [completed(item, seed=7) for item in [*CELLS, *FEW]]
    # two more items that ended as infra errors, one of them after a retry that also failed
    extra = [WorkItem("gpt-4o-mini", "optimal", 0.8, "hard", "simple_task", 9),
             WorkItem("gpt-4o-mini", "optimal", 0.6, "medium", "data_pipeline", 9)]  # fmt: skip
    results += [infra(item) for item in [*extra, *INFRA_ONLY]]
    results.append(infra(extra[0], "connection reset"))
    return results


def document(results: Iterable[TestResult]) -> dict[str, Any]:
    tree = StatsTree()
    for result in results:
        tree.add_result(result)
    db: dict[str, Any] = orjson.loads(b"".join(render(tree, "2026-01-01T00:00:00Z")))
    return db


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A results directory holding the hand-made database."""
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps(document(hand_made())))
    return tmp_path


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `report` with the given arguments: (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser()
        add_report_arguments(parser)
        code = run_report(parser.parse_args(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def expected_by(results: Sequence[TestResult], by: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The report's numbers computed by hand from the individual results."""
    latest: dict[str, TestResult] = {}
    for r in results:  # an item counts once: a completed record wins, else its infra error
        if r.item_id not in latest or latest[r.item_id].outcome != "completed":
            latest[r.item_id] = r
    cells: dict[tuple[str, str], list[TestResult]] = defaultdict(list)
    for r in latest.values():
        cells[r.model, r.labels[by]].append(r)
    out = {}
    for cell, rs in cells.items():
        done = [r for r in rs if r.outcome == "completed"]
        n = len(done)
        full = sum(r.success_level == "full_success" for r in done)
        partial = sum(r.success_level == "partial_success" for r in done)
        errors = [r.error_category for r in done if r.error_category is not None]
        row: dict[str, Any] = {
            "total": n,
            "infra_errors": len(rs) - n,
            "success_rate": (full + partial) / n if n else 0.0,
            "full_success_rate": full / n if n else 0.0,
            "partial_success_rate": partial / n if n else 0.0,
            "weighted_success_score": (full + partial / 2) / n if n else 0.0,
            "tool_coverage_rate": sum(r.metrics["tool_coverage_rate"] for r in done) / n
            if n
            else 0.0,
            "avg_workflow_score": sum(r.metrics["workflow_score"] for r in done) / n if n else 0.0,
            "avg_final_score": sum(r.metrics["final_score"] for r in done) / n if n else 0.0,
            "total_errors": len(errors),
        }
        for c in ERROR_CATEGORIES:
            row[f"{c}_error_share"] = errors.count(c) / len(errors) if errors else 0.0
        out[cell] = row
    return out


def assert_rows_match(
    rows: list[dict[str, Any]], expected: dict[Any, dict[str, Any]], by: str
) -> None:
    assert {(r["model"], r[by]) for r in rows} == set(expected)
    for row in rows:
        want = expected[row["model"], row[by]]
        assert {k: row[k] for k in want} == pytest.approx(want, rel=1e-9, abs=1e-12), (
            row["model"],
            row[by],
        )


# ---- rows ---------------------------------------------------------------------------------


def test_rows_have_the_documented_columns() -> None:
    rows = report_rows(document(hand_made()))
    keys = list(rows[0])
    assert keys[:2] == ["model", "prompt_type"] and set(REPORT_FIELDS) <= set(keys)
    assert keys[-3:] == ["success_rate_low", "success_rate_high", "few_tests"]
    assert not any(k.startswith("sum_") for k in keys)
    # models sorted, prompt types in their natural order (baseline, cot, optimal, flawed_*)
    assert [(r["model"], r["prompt_type"]) for r in rows] == [
        ("DeepSeek-V3-0324", "baseline"),
        ("DeepSeek-V3-0324", "optimal"),
        ("DeepSeek-V3-0324", "flawed_tool_misuse"),
        ("gpt-4o-mini", "baseline"),
        ("gpt-4o-mini", "cot"),
        ("gpt-4o-mini", "optimal"),
    ]


def test_rows_by_prompt_type_equal_the_stored_overall_stats() -> None:
    db = document(hand_made())
    for row in report_rows(db, "prompt_type"):
        stored = db["models"][row["model"]]["by_prompt_type"][row["prompt_type"]]["overall_stats"]
        assert {k: row[k] for k in REPORT_FIELDS} == pytest.approx(
            {k: stored[k] for k in REPORT_FIELDS}
        )


@pytest.mark.parametrize("by", ["difficulty", "tool_success_rate", "task_type", "prompt_type"])
def test_aggregation_equals_a_hand_computation(by: str) -> None:
    results = hand_made()
    rows = report_rows(document(results), by)
    assert_rows_match(rows, expected_by(results, by), by)


def test_difficulty_sums_counts_across_the_other_dimensions() -> None:
    rows = {
        (r["model"], r["difficulty"]): r for r in report_rows(document(hand_made()), "difficulty")
    }
    # 2 prompts × 2 rates × (1 + 3) instances per difficulty, plus the 3 `cot` tests on easy
    assert rows["gpt-4o-mini", "easy"]["total"] == 16 + 3
    assert rows["gpt-4o-mini", "medium"]["total"] == 16
    assert rows["gpt-4o-mini", "medium"]["infra_errors"] == 1
    assert rows["gpt-4o-mini", "hard"]["infra_errors"] == 1  # two records, one item
    assert rows["DeepSeek-V3-0324", "easy"]["infra_errors"] == 2
    assert [r["difficulty"] for r in report_rows(document(hand_made()), "difficulty")][:3] == [
        "easy",
        "medium",
        "hard",
    ]


def test_leaves_are_weighted_by_their_tests_not_averaged() -> None:
    db = document(hand_made())
    leaves = [
        r for r in leaf_rows(db) if r["model"] == "gpt-4o-mini" and r["difficulty"] == "medium"
    ]
    pooled = sum(r["success"] for r in leaves) / sum(r["total"] for r in leaves)
    naive = sum(r["success_rate"] for r in leaves) / len(leaves)
    assert naive != pytest.approx(pooled)  # the data tells the two apart
    rows = {(r["model"], r["difficulty"]): r for r in report_rows(db, "difficulty")}
    assert rows["gpt-4o-mini", "medium"]["success_rate"] == pooled


def test_few_tests_and_infra_only_cells() -> None:
    db = document(hand_made())
    rows = {(r["model"], r["prompt_type"]): r for r in report_rows(db, min_tests=5)}
    assert rows["gpt-4o-mini", "cot"]["few_tests"] is True
    assert rows["gpt-4o-mini", "optimal"]["few_tests"] is False
    infra_only = rows["DeepSeek-V3-0324", "flawed_tool_misuse"]
    assert infra_only["total"] == 0 and infra_only["infra_errors"] == 2
    assert infra_only["success_rate"] == 0.0 and infra_only["few_tests"] is True
    # infra errors never enter the success statistics of a cell that has tests
    assert (
        rows["gpt-4o-mini", "optimal"]["total"] == 24
        and rows["gpt-4o-mini", "optimal"]["infra_errors"] == 2
    )
    assert not any(r["few_tests"] for r in report_rows(db, min_tests=3) if r["total"] >= 3)


def test_unknown_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="by must be one of"):
        report_rows(document(hand_made()), "model")


async def test_rows_from_a_simulated_run(write_yaml: Callable[[str], Path], tmp_path: Path) -> None:
    config = load_config(
        write_yaml("""
defaults:
  retry: {max_attempts: 6, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 60}
keys:
  k0: {env: T_K0}
providers:
  lab: {kind: openai, base_url: "https://lab.invalid/v1"}
models:
  gpt-4o-mini: {provider: lab, strategy: single, keys: [k0], workers: 20, qps: 2000}
  qwen2.5-3b-instruct: {provider: lab, strategy: single, keys: [k0], workers: 20, qps: 2000}
""")
    )
    options = RunOptions(
        models="all",
        prompt_types="optimal,baseline",
        difficulties="easy,hard",
        task_types="simple_task,data_pipeline",
        instances=2,
        simulate=True,
        sim_latency_ms=0,
        out=tmp_path,
    )
    run = await run_evaluation(options, config=config)
    assert run.summary.completed == 2 * 2 * 2 * 2 * 2
    db = read_database(run.database)
    results = read_journal(run.journal)
    for by in ("difficulty", "prompt_type"):
        assert_rows_match(report_rows(db, by), expected_by(results, by), by)
    assert sum(r["total"] for r in report_rows(db, "difficulty")) == db["summary"]["total"]


# ---- formats ------------------------------------------------------------------------------


def test_json_format(out_dir: Path, report: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = report("--out", str(out_dir), "--format", "json", "--by", "difficulty")
    assert code == 0
    rows = orjson.loads(out)
    assert rows == report_rows(read_database(out_dir / DATABASE_FILE), "difficulty")
    assert all(isinstance(r["few_tests"], bool) for r in rows)


def test_csv_format(out_dir: Path, report: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = report("--out", str(out_dir), "--format", "csv", "--min-tests", "5")
    assert code == 0
    lines = list(csv.DictReader(io.StringIO(out)))
    assert list(lines[0])[:2] == ["model", "prompt_type"] and list(lines[0])[-1] == "few_tests"
    assert set(REPORT_FIELDS) <= set(lines[0])
    assert len(lines) == 6
    few = {(r["model"], r["prompt_type"]) for r in lines if r["few_tests"] == "true"}
    assert few == {("gpt-4o-mini", "cot"), ("DeepSeek-V3-0324", "flawed_tool_misuse")}
    assert {r["few_tests"] for r in lines} == {"true", "false"}


def test_markdown_format(out_dir: Path, report: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = report("--out", str(out_dir), "--format", "markdown", "--by", "task_type")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | task type | n | success | 95% CI |")
    assert set(table[1]) <= set("|:-")
    assert len(table) == 2 + 2 * 2  # header, separator, 2 models × 2 task types
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_table_format_marks_few_tests_and_shows_infra_apart(
    out_dir: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, _ = report("--out", str(out_dir))
    assert code == 0
    lines = out.splitlines()
    cot = next(line for line in lines if " cot " in line)
    assert "3*" in cot.split()
    infra_only = next(line for line in lines if "flawed_tool_misuse" in line)
    cells = infra_only.split()
    assert cells[1:4] == ["0*", "–", "–"]  # no tests: the success rate is undefined, not 0 %
    assert "infra errors" in out and "* fewer than 5 tests" in out
    # not a terminal: wide enough that no column is cut
    assert "…" not in "".join(lines[:4])


def test_render_report_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        render_report(document(hand_made()), "xml")


def test_out_defaults_to_the_settings(
    out_dir: Path, report: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ULTRA_ASYNC_OUT", str(out_dir))
    code, out, _ = report("--format", "json")
    assert code == 0 and len(orjson.loads(out)) == 6


def test_min_tests_must_be_a_count() -> None:
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--min-tests", "-1"])


# ---- a database that cannot be read ----------------------------------------------------------


def test_missing_database_exits_3_and_says_what_to_do(
    tmp_path: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, err = report("--out", str(tmp_path))
    assert code == 3 and out == ""
    assert str(tmp_path / DATABASE_FILE) in err and "ultra_async run" in err
    (tmp_path / JOURNAL_FILE).write_text("")
    code, _, err = report("--out", str(tmp_path))
    assert code == 3 and "db repair" in err


def test_unreadable_database_exits_3(
    tmp_path: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(b'{"version": "4.0", "models": {')
    code, out, err = report("--out", str(tmp_path))
    assert code == 3 and out == ""
    assert str(tmp_path / DATABASE_FILE) in err and "db repair" in err


def test_damaged_structure_exits_3_without_printing_a_partial_table(
    out_dir: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    db = read_database(out_dir / DATABASE_FILE)
    del db["models"]["gpt-4o-mini"]["by_prompt_type"]["optimal"]["by_tool_success_rate"]
    (out_dir / DATABASE_FILE).write_bytes(orjson.dumps(db))
    code, out, err = report("--out", str(out_dir))
    assert code == 3 and out == "" and "db check" in err


def test_old_schema_exits_4_and_names_migrate(
    tmp_path: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    (tmp_path / DATABASE_FILE).write_bytes(orjson.dumps({"version": "3.0", "models": {}}))
    code, _, err = report("--out", str(tmp_path))
    assert code == 4 and "db migrate" in err


# ---- the plot -----------------------------------------------------------------------------


def test_plot_writes_a_png(
    out_dir: Path, tmp_path: Path, report: Callable[..., tuple[int, str, str]]
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "plots" / "report.png"
    target.parent.mkdir()
    code, out, err = report("--out", str(out_dir), "--plot", str(target), "--by", "difficulty")
    assert code == 0 and "gpt-4o-mini" in out and str(target) in err
    assert target.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("by", ["prompt_type", "tool_success_rate", "task_type"])
def test_write_plot_for_every_dimension(tmp_path: Path, by: str) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "p"  # no suffix: still a PNG
    write_plot(document(hand_made()), path, by)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("metric", ["full_success_rate", "weighted_success_score"])
def test_plot_of_another_metric(
    out_dir: Path, tmp_path: Path, report: Callable[..., tuple[int, str, str]], metric: str
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / f"{metric}.png"
    code, _, _ = report("--out", str(out_dir), "--plot", str(target), "--metric", metric)
    assert code == 0 and target.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="unknown metric"):
        write_plot(document(hand_made()), tmp_path / "x.png", metric="vibes")


def test_plot_of_an_empty_database(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_plot(document([]), tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_without_matplotlib_says_how_to_install_it(
    out_dir: Path,
    tmp_path: Path,
    report: Callable[..., tuple[int, str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install 'ultra_async\[analysis\]'"):
        write_plot(document(hand_made()), tmp_path / "x.png")
    code, out, err = report("--out", str(out_dir), "--plot", str(tmp_path / "x.png"))
    assert code == 1 and "gpt-4o-mini" in out  # the report itself is still printed
    assert "ultra_async[analysis]" in err and not (tmp_path / "x.png").exists()

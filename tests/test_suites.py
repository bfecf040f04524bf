"""Own suites end to end on the simulator: identity and resume, changed cases, evaluate errors."""

from __future__ import annotations

import math
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import ultra_async as ua
from tests.conftest import ROOT
from tests.test_run_simulated import FAST
from ultra_async.report.rows import aggregate, t95
from ultra_async.report.tables import report_rows
from ultra_async.results import db
from ultra_async.results.storage import JOURNAL_FILE

MODELS = "o3-0416-global,qwen2.5-3b-instruct"


@pytest.fixture
def providers(write_yaml: Callable[[str], Path]) -> Path:
    return write_yaml(FAST)


def questions(n: int = 12) -> list[ua.Case]:
    return [
        ua.Case(
            f"q{i}",
            {"topic": ("algebra", "geometry")[i % 2], "level": ("easy", "hard")[i % 3 == 0]},
            {"question": f"What is {i} + {i}?", "answer": 2 * i},
        )
        for i in range(n)
    ]


async def ask(case: ua.Case, chat: ua.ChatFn) -> ua.Outcome:
    reply = await chat([{"role": "user", "content": case.data["question"]}])
    ok = reply.content.strip() == str(case.data["answer"])
    return ua.Outcome.passed(
        ok, metrics={"length": len(reply.content)}, details={"r": reply.content}
    )


def answer(case: ua.Case, model: str, rng: random.Random) -> str:
    return str(case.data["answer"]) if rng.random() < 0.7 else "no idea"


def suite(cases: Any, evaluate: Any = ask) -> ua.Suite:
    return ua.Suite("math", ["topic", "level"], cases, evaluate, simulate=answer)


def run(s: ua.Suite, out: Path, providers: Path, **options: Any) -> ua.RunReport:
    report: ua.RunReport = ua.run(
        s, models=MODELS, simulate=True, out=out, providers=providers, progress=False, **options
    )
    return report


def database(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((out / "master_database.json").read_bytes())
    return data


def test_levels_metrics_and_one_row_per_test(tmp_path: Path, providers: Path) -> None:
    report = run(suite(questions()), tmp_path, providers, instances=2)
    assert report.summary.completed == 2 * 12 * 2 and report.suite == "math"
    data = database(tmp_path)
    assert (data["suite"], data["dimensions"]) == ("math", ["topic", "level"])
    node = data["models"]["o3-0416-global"]["by_topic"]["algebra"]
    assert node["overall_stats"]["total"] == 12
    leaf = node["by_level"]["hard"]
    assert leaf["avg_length"] == leaf["sum_length"] / leaf["total"] > 0
    assert 0 < data["overall_stats"]["avg_score"] < 1
    assert db.check(tmp_path).code == 0
    tests = ua.load(tmp_path).tests()
    assert len(tests) == 48
    assert {"model", "shard", "topic", "level", "score", "length", "details.r"} <= set(tests)


def test_reordered_and_filtered_cases_send_no_request(tmp_path: Path, providers: Path) -> None:
    run(suite(questions()), tmp_path, providers)
    before = db.comparable(database(tmp_path))
    reordered = list(reversed(questions()))[:8]
    again = run(suite(reordered), tmp_path, providers)
    assert (again.summary.requests, again.planned, again.skipped) == (0, 0, 16)
    assert db.comparable(database(tmp_path)) == before


def test_a_changed_case_is_reported_and_rerun_on_request(tmp_path: Path, providers: Path) -> None:
    run(suite(questions()), tmp_path, providers)
    changed = questions()
    changed[3] = ua.Case("q3", changed[3].labels, {"question": "What is 3 + 4?", "answer": 7})
    again = run(suite(changed), tmp_path, providers)
    assert sorted(again.changed) == ["o3-0416-global/q3/0", "qwen2.5-3b-instruct/q3/0"]
    assert again.summary.requests == 0
    rerun = run(suite(changed), tmp_path, providers, rerun_changed=True)
    assert rerun.summary.completed == 2
    data = database(tmp_path)
    assert data["overall_stats"]["total"] == 24  # replaced, not added
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    (rebuilt / JOURNAL_FILE).write_bytes((tmp_path / JOURNAL_FILE).read_bytes())
    db.rebuild(rebuilt)
    assert db.comparable(database(rebuilt)) == db.comparable(data)
    assert run(suite(changed), tmp_path, providers).changed == []


def test_invalid_outcomes_end_as_evaluate_errors(tmp_path: Path, providers: Path) -> None:
    async def sloppy(case: ua.Case, chat: ua.ChatFn) -> Any:
        await chat([{"role": "user", "content": "hi"}])
        kind = int(case.id[1:]) % 4
        if kind == 0:
            return ua.Outcome(success_level="pass")
        if kind == 1:
            return {"success_level": "full_success"}
        if kind == 2:
            raise KeyError("answer")
        return ua.Outcome.passed(True)

    report = run(suite(questions(), sloppy), tmp_path, providers)
    summary = report.summary
    assert (summary.completed, summary.evaluate_errors) == (6, 18)
    reasons = {key.split(": ", 1)[1] for key in summary.error_reasons}
    assert reasons == {
        "success_level 'pass' is not one of full_success, partial_success, failure",
        "evaluate returned dict, not an Outcome",
        "evaluate raised KeyError: 'answer'",
    }
    stats = database(tmp_path)["overall_stats"]
    assert (stats["total"], stats["evaluate_errors"]) == (6, 18)
    assert run(suite(questions(), sloppy), tmp_path, providers).summary.requests == 0
    fixed = run(suite(questions()), tmp_path, providers, retry_errors=True)
    assert fixed.summary.completed == 18
    stats = database(tmp_path)["overall_stats"]
    assert (stats["total"], stats["evaluate_errors"]) == (24, 0)


def test_a_damaged_journal_record_is_reported_not_counted(tmp_path: Path, providers: Path) -> None:
    run(suite(questions(4)), tmp_path, providers)
    journal = tmp_path / JOURNAL_FILE
    lines = journal.read_bytes().splitlines(keepends=True)
    record = orjson.loads(lines[1])
    record["metrics"] = {"length": "abc"}
    record["instance"] = None
    journal.write_bytes(b"".join([*lines, orjson.dumps(record) + b"\n"]))
    report = db.check(tmp_path)
    assert report.code == 7
    assert "not a valid result record (instance is not a whole number >= 0)" in report.problems[0]
    repaired = db.repair(tmp_path)
    assert db.check(tmp_path).code == 0, repaired.problems


def test_suite_definitions_are_checked() -> None:
    with pytest.raises(ua.PlanError, match="appears twice"):
        suite([ua.Case("a", {"topic": "x", "level": "y"})] * 2).load_cases()
    with pytest.raises(ua.PlanError, match="no string label for level"):
        suite([ua.Case("a", {"topic": "x"})]).load_cases()
    with pytest.raises(ua.PlanError, match="dimensions must be a list"):
        ua.Suite("s", "topic", [], ask)


@pytest.mark.slow
def test_the_documented_example_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "arithmetic"
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs/examples/own_suite.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "180 tests, 0 evaluate errors" in done.stdout
    data = database(out)
    size = data["models"]["gpt-4o-mini"]["by_operation"]["multiply"]["by_size"]
    assert size["large"]["avg_abs_error"] > size["small"]["avg_abs_error"]


@pytest.mark.slow
def test_a_python_suite_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ultra_async",
            "run",
            "--suite",
            str(ROOT / "docs/examples/own_suite.py") + ":SUITE",
            "--models",
            "gpt-4o-mini",
            "--simulate",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert database(out)["overall_stats"]["total"] == 60
    bad = subprocess.run(
        [sys.executable, "-m", "ultra_async", "run", "--suite", "nowhere:SUITE", "--simulate"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "cannot import nowhere" in bad.stderr


async def test_keys_and_base_urls_from_a_script_reach_a_server(
    tmp_path: Path, providers: Path
) -> None:
    # a standalone server on 127.0.0.1 plays the real API: no environment variable is set
    from ultra_async.config import load_config
    from ultra_async.sim import sim_setup_from_config

    config = load_config(providers)
    setup = sim_setup_from_config(config, seed=0)
    async with setup.server() as server:
        urls = {name: server.base_url_for(p.kind) for name, p in config.data.providers.items()}
        report = await ua.arun(
            suite(questions(4)),
            models=MODELS,
            out=tmp_path,
            providers=providers,
            keys=dict(setup.secrets),
            base_urls=urls,
            progress=False,
        )
    assert report.summary.completed == 8 and report.summary.requests == 8
    with pytest.raises(ua.ConfigError, match="keys= names nope"):
        await ua.arun(suite(questions(1)), models=MODELS, out=tmp_path, providers=providers,
                      keys={"nope": "x"}, progress=False)  # fmt: skip


def test_limit_and_sample_make_a_seeded_smoke_run(tmp_path: Path, providers: Path) -> None:
    from ultra_async._prepare import select_cases

    cases = questions(40)
    half = select_cases(cases, None, 0.5, seed=1)
    assert 10 < len(half) < 30
    assert select_cases(list(reversed(cases)), None, 0.5, seed=1) == list(reversed(half))
    assert select_cases(cases, None, 0.5, seed=2) != half
    assert select_cases(cases, 3, 0.5, seed=1) == half[:3]
    report = run(suite(cases), tmp_path, providers, limit=3, sample=0.5, seed=1)
    assert report.planned == 3 * 2
    with pytest.raises(ua.PlanError, match="fraction"):
        select_cases(cases, None, 1.5, seed=1)


def test_cost_per_node_and_in_the_report(
    tmp_path: Path, write_yaml: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    priced = FAST.replace(
        "o3-0416-global: {provider: lab, strategy: single, keys: [k0], workers: 20, qps: 2000}",
        "o3-0416-global: {provider: lab, strategy: single, keys: [k0], workers: 20, qps: 2000,"
        " price: {input_per_mtok: 2.0, output_per_mtok: 8.0}}",
    )
    assert priced != FAST
    run(suite(questions(6)), tmp_path, write_yaml(priced))
    data = database(tmp_path)
    priced_model = data["models"]["o3-0416-global"]["overall_stats"]
    tests = ua.load(tmp_path).tests()
    spent = tests[tests["model"] == "o3-0416-global"]["cost"].sum()
    assert priced_model["total_cost"] == pytest.approx(spent) and spent > 0
    assert data["models"]["qwen2.5-3b-instruct"]["overall_stats"]["total_cost"] == 0
    from ultra_async.cli.main import main

    assert main(["report", "--out", str(tmp_path)]) == 0
    assert " cost" in capsys.readouterr().out


def test_a_metric_some_outcomes_leave_out_is_averaged_over_those_that_report_it(
    tmp_path: Path, providers: Path
) -> None:
    async def partly(case: ua.Case, chat: ua.ChatFn) -> ua.Outcome:
        await chat([{"role": "user", "content": case.data["question"]}])
        i = int(case.id[1:])
        # `steps` only for even cases (3.0 each), no score at all for multiples of 3
        metrics = {"steps": 3.0} if i % 2 == 0 else {}
        return ua.Outcome(
            success_level="full_success", score=None if i % 3 == 0 else 1.0, metrics=metrics
        )

    run(suite(questions(), partly), tmp_path, providers)
    data = database(tmp_path)
    stats = data["overall_stats"]
    assert stats["total"] == 24
    assert (stats["n_steps"], stats["avg_steps"]) == (12, 3.0)  # not 36 / 24 = 1.5
    assert (stats["n_score"], stats["avg_score"]) == (16, 1.0)
    leaf = data["models"]["o3-0416-global"]["by_topic"]["algebra"]["by_level"]["hard"]
    assert leaf["avg_steps"] == leaf["sum_steps"] / leaf["n_steps"] == 3.0
    assert db.check(tmp_path).code == 0
    # a report cell over many leaves derives its mean from their sums and counts
    rows = report_rows(data, by="topic")
    by_topic = {(row["model"], row["topic"]): row["avg_steps"] for row in rows}
    # only even cases (algebra) report steps: geometry has no mean rather than a mean of 0
    assert set(by_topic.values()) == {3.0, None}
    assert all((value == 3.0) == (topic == "algebra") for (_, topic), value in by_topic.items())
    # a database written before metrics were counted lacks `n_<m>`: its means stay over `total`
    old = {k: v for k, v in stats.items() if not k.startswith("n_")}
    assert aggregate([old, old])["avg_steps"] == 36 * 2 / 48


def test_a_metric_mean_carries_its_t_interval(tmp_path: Path, providers: Path) -> None:
    async def measured(case: ua.Case, chat: ua.ChatFn) -> ua.Outcome:
        await chat([{"role": "user", "content": case.data["question"]}])
        i = int(case.id[1:])
        return ua.Outcome(success_level="full_success", metrics={"steps": float(i * i % 7)})

    run(suite(questions(), measured), tmp_path, providers, instances=2)
    data = database(tmp_path)
    by_cell: dict[tuple[str, str], list[float]] = {}
    for line in (tmp_path / JOURNAL_FILE).read_bytes().splitlines():
        record = orjson.loads(line)
        if "metrics" in record:
            key = (record["model"], record["labels"]["topic"])
            by_cell.setdefault(key, []).append(record["metrics"]["steps"])
    rows = report_rows(data, by="topic")
    assert len(rows) == len(by_cell) == 4
    for row in rows:
        values = by_cell[row["model"], row["topic"]]
        n, mean = len(values), statistics.fmean(values)
        half = t95(n - 1) * statistics.stdev(values) / math.sqrt(n)
        assert row["n_steps"] == n == 12
        assert row["avg_steps"] == pytest.approx(mean)
        assert row["avg_steps_low"] == pytest.approx(mean - half)
        assert row["avg_steps_high"] == pytest.approx(mean + half)
    assert t95(11) == 2.201 and round(t95(60), 2) == 2.0  # the table, and beyond it
    assert db.check(tmp_path).code == 0

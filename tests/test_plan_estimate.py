"""`plan` shows the least duration at the configured limits."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from ultra_async.cli.main import main
from ultra_async.config import Config
from ultra_async.planner import make_plan
from ultra_async.report.estimate import cost_estimate, duration, estimate
from ultra_async.suites.workflow.suite import workflow_matrix


def plan_of(config: Config, models: str, instances: int) -> object:
    return make_plan(config, workflow_matrix(config, models=models, instances=instances))


def test_a_shared_key_bounds_the_models_that_use_it(repo_config: Config) -> None:
    # three models of 10 qps each share the ideallab-closed key (10 qps in all)
    plan = plan_of(repo_config, "o3-0416-global,gemini-2.5-flash-06-17,kimi-k2", 20)
    found = estimate(plan, repo_config, requests_per_test=4)  # type: ignore[arg-type]
    assert found.requests == 3 * 100 * 4
    assert found.bound_by == "key ideallab-closed" and found.seconds == pytest.approx(120.0)
    assert found.shard_seconds["kimi-k2/kimi-k2"] == pytest.approx(40.0)


def test_one_model_is_bound_by_its_shards(repo_config: Config) -> None:
    plan = plan_of(repo_config, "qwen2.5-72b-instruct", 6)
    found = estimate(plan, repo_config, requests_per_test=1)  # type: ignore[arg-type]
    # 30 tests over three 10-qps key shards
    assert found.bound_by == "qwen2.5-72b-instruct" and found.seconds == pytest.approx(1.0)


def test_durations_read_like_clocks() -> None:
    assert [duration(s) for s in (0, 12.4, 247, 3909)] == ["0s", "12s", "4:07", "1:05:09"]


def test_plan_prints_the_expected_duration(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--providers", str(ROOT / "providers.yaml"), "--models", "kimi-k2",
            "--instances", "20", "--requests-per-test", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "expected duration: at least 20s" in out and "200 requests at ~2 per test" in out


PRICED = "gpt-4o-mini,gpt-5-mini,kimi-k2"  # two with a price in providers.yaml, one without


def test_plan_prices_only_what_a_run_measured(
    tmp_path: Path, repo_config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    plan = [ "plan", "--providers", str(ROOT / "providers.yaml"), "--models", PRICED,
             "--instances", "3", "--out", str(out)]  # fmt: skip
    assert main(plan) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "cost not measured yet for gpt-4o-mini, gpt-5-mini" in printed
    assert "expected cost" not in printed and "kimi-k2:" not in printed

    smoke = ["run", "--simulate", "--providers", str(ROOT / "providers.yaml"), "--models",
             PRICED, "--limit", "2", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(smoke) == 0
    capsys.readouterr()
    # what the journal says each priced model's tests cost, recomputed here
    records = [orjson.loads(line) for line in (out / "results.jsonl").read_bytes().splitlines()]
    found = cost_estimate(plan_of(repo_config, PRICED, 3), repo_config, out)  # type: ignore[arg-type]
    for model in ("gpt-4o-mini", "gpt-5-mini"):
        costs = [r["cost"] for r in records if r.get("model") == model]
        assert len(costs) == 2 and all(c > 0 for c in costs)
        assert found.per_test[model] == (pytest.approx(sum(costs) / 2), 2)
        assert found.remaining[model] == 5 * 3 - 2
    assert "kimi-k2" not in found.remaining and not found.unmeasured
    assert main(plan) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"expected cost: about {found.total:.4g} for the 26 tests not in" in printed

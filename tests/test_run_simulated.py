"""Whole runs against the embedded simulator: the real plan, engine, benchmark and database."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from ultra_async.config import Config, load_config
from ultra_async.results.db import comparable
from ultra_async.results.storage import read_journal
from ultra_async.runner import RunOptions, run_evaluation
from ultra_async.suites.workflow.dimensions import PROMPT_TYPES

# the real models' names (so their skill profiles apply) with limits high enough for a test
FAST = """
defaults:
  retry: {max_attempts: 6, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 60}
keys:
  k0: {env: T_K0}
  k1: {env: T_K1}
  az: {env: T_AZ}
providers:
  lab: {kind: openai, base_url: "https://lab.invalid/v1"}
  azure: {kind: azure, base_url: "https://azure.invalid", api_version: "2024-12-01-preview"}
models:
  o3-0416-global: {provider: lab, strategy: single, keys: [k0], workers: 20, qps: 2000}
  qwen2.5-3b-instruct: {provider: lab, strategy: keys, keys: [k0, k1], instance_prefix: qwen, workers: 10, qps: 2000}
  DeepSeek-V3-0324:
    provider: azure
    strategy: instances
    keys: [az]
    deployments: [DeepSeek-V3-0324, DeepSeek-V3-0324-2]
    workers: 10
    qps: 2000
"""


@pytest.fixture
def fast_config(write_yaml: Callable[[str], Path]) -> Config:
    return load_config(write_yaml(FAST))


def rates_by_prompt(journal: Path, model: str) -> dict[str, float]:
    full: dict[str, list[int]] = defaultdict(list)
    for result in read_journal(journal):
        if result.model == model and result.outcome == "completed":
            full[result.labels["prompt_type"]].append(result.success_level == "full_success")
    return {p: sum(v) / len(v) for p, v in full.items()}


async def test_every_prompt_type_through_the_simulator(fast_config: Config, tmp_path: Path) -> None:
    options = RunOptions(
        models="o3-0416-global,qwen2.5-3b-instruct",
        prompt_types="all_with_flawed",
        instances=4,
        simulate=True,
        seed=3,
        out=tmp_path,
    )
    report = await run_evaluation(options, config=fast_config)
    assert report.summary.completed == 2 * 10 * 5 * 4 and report.summary.infra_errors == 0
    strong = rates_by_prompt(report.journal, "o3-0416-global")
    weak = rates_by_prompt(report.journal, "qwen2.5-3b-instruct")
    assert set(strong) == set(PROMPT_TYPES)
    # a strong model does far better with the correct plan than a weak one
    assert strong["optimal"] > weak["optimal"] + 0.2
    # flawed plans hurt on average
    flawed = [strong[p] for p in PROMPT_TYPES if p.startswith("flawed_")]
    assert sum(flawed) / len(flawed) < strong["optimal"]
    # baseline has no tool list: the model has to search
    searched = [
        r
        for r in read_journal(report.journal)
        if r.labels["prompt_type"] == "baseline" and r.model == "o3-0416-global"
    ]
    assert searched and all(r.metrics["tool_calls"] >= 0 for r in searched)
    # the qwen shards really went to two different keys
    keys = report.sim_stats["keys"] if report.sim_stats else {}
    assert keys["k0"]["requests"] > 0 and keys["k1"]["requests"] > 0


async def test_same_seed_same_database(fast_config: Config, tmp_path: Path) -> None:
    databases = []
    for name in ("A", "B"):
        options = RunOptions(
            models="all",
            prompt_types="optimal,baseline,flawed_tool_misuse",
            instances=2,
            simulate=True,
            seed=7,
            out=tmp_path / name,
        )
        report = await run_evaluation(options, config=fast_config)
        assert report.summary.completed == 3 * 3 * 5 * 2
        databases.append(comparable(orjson.loads(report.database.read_bytes())))
    assert databases[0] == databases[1]
    # and a different seed really changes something
    other = await run_evaluation(
        RunOptions(
            models="all",
            prompt_types="optimal,baseline,flawed_tool_misuse",
            instances=2,
            simulate=True,
            seed=8,
            out=tmp_path / "C",
        ),
        config=fast_config,
    )
    assert comparable(orjson.loads(other.database.read_bytes())) != databases[0]


async def test_rerun_tops_cells_up(fast_config: Config, tmp_path: Path) -> None:
    base = {"models": "DeepSeek-V3-0324", "simulate": True, "seed": 1, "out": tmp_path}
    first = await run_evaluation(RunOptions(instances=2, **base), config=fast_config)  # type: ignore[arg-type]
    assert first.summary.completed == 10 and first.skipped == 0
    again = await run_evaluation(RunOptions(instances=2, **base), config=fast_config)  # type: ignore[arg-type]
    assert again.summary.completed == 0 and again.skipped == 10
    more = await run_evaluation(RunOptions(instances=3, **base), config=fast_config)  # type: ignore[arg-type]
    assert more.summary.completed == 5 and more.skipped == 10
    ids = [r.item_id for r in read_journal(more.journal)]
    assert len(ids) == len(set(ids)) == 15
    db = orjson.loads(more.database.read_bytes())
    assert db["models"]["DeepSeek-V3-0324"]["overall_stats"]["total"] == 15


def test_run_without_keys_names_variables_and_sends_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ultra_async",
            "run",
            "--providers",
            str(ROOT / "providers.yaml"),
            "--models",
            "gpt-4o-mini,qwen2.5-7b-instruct",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stderr
    assert "AZURE_API_KEY" in proc.stderr and "IDEALLAB_API_KEY_0" in proc.stderr
    assert "--simulate" in proc.stderr
    assert not (tmp_path / "results.jsonl").exists()

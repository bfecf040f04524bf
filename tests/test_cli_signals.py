"""Ctrl-C and SIGTERM on a real `python -m ultra_async run --simulate`: exit 130, nothing lost,
the database agrees with the journal, and the same command finishes the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ultra_async.config import load_config
from ultra_async.planner import make_plan
from ultra_async.results import db
from ultra_async.results.storage import JOURNAL_FILE, read_journal
from ultra_async.suites.workflow.suite import workflow_matrix

GRACE_S = 2.0
# Two shards of 15 requests per second against the simulator's matching limits; a test takes
# about five requests, so the 90 tests below need 15 s or more however fast the machine is.
PROVIDERS = f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 60}}
  grace_s: {GRACE_S}
keys:
  s0: {{env: SIG_K0}}
  s1: {{env: SIG_K1}}
providers:
  lab: {{kind: openai, base_url: "https://lab.invalid/v1"}}
models:
  qwen2.5-7b-instruct:
    {{provider: lab, strategy: keys, keys: [s0, s1], instance_prefix: qwen, workers: 2, qps: 15}}
"""
PROMPT_TYPES = "optimal,baseline,cot"
INSTANCES = 6  # × 3 prompt types × 5 task types = 90 tests
#: journal lines to wait for before the signal: the run is well under way
STARTED_LINES = 20


def run_args(providers: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "ultra_async", "run", "--simulate",
        "--providers", str(providers), "--out", str(out), "--quiet", "--seed", "4",
        "--prompt-types", PROMPT_TYPES, "--task-types", "all", "--instances", str(INSTANCES),
    ]  # fmt: skip


def planned_ids(providers: Path) -> set[str]:
    config = load_config(providers)
    matrix = workflow_matrix(config, prompt_types=PROMPT_TYPES, instances=INSTANCES)
    plan = make_plan(config, matrix)
    return {item.id for sp in plan.shards for item in sp.items}


def journal_lines(out: Path) -> int:
    try:
        with open(out / JOURNAL_FILE, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_for_lines(proc: subprocess.Popen[bytes], out: Path, lines: int, timeout_s: float) -> None:
    """Poll the journal until it holds `lines` lines; fail if the run ends or time runs out."""
    deadline = time.monotonic() + timeout_s
    while journal_lines(out) < lines:
        assert proc.poll() is None, f"the run ended early with exit code {proc.returncode}"
        assert time.monotonic() < deadline, f"fewer than {lines} journal lines in {timeout_s}s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_a_rerun_finishes(
    sig: signal.Signals, write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    providers = write_yaml(PROVIDERS)
    out = tmp_path / "results"
    planned = planned_ids(providers)
    assert len(planned) == 90
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULTRA_ASYNC_")}
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(
            run_args(providers, out), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )
        try:
            wait_for_lines(proc, out, STARTED_LINES, timeout_s=60)
            proc.send_signal(sig)
            # in-flight tests get the grace period, then the aggregator flushes
            code = proc.wait(timeout=GRACE_S + 20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    output = (tmp_path / "first.log").read_text(encoding="utf-8", errors="replace")
    assert code == 130, output
    assert "Traceback" not in output, output

    first = Counter(r.item_id for r in read_journal(out / JOURNAL_FILE))
    assert STARTED_LINES <= len(first) < len(planned), "the signal did not interrupt the run"
    assert max(first.values()) == 1 and set(first) <= planned
    report = db.check(out)
    assert report.code == db.EXIT_OK, report.problems
    assert not list(out.glob(".*.tmp"))

    rerun = subprocess.run(
        run_args(providers, out),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    final = Counter(r.item_id for r in read_journal(out / JOURNAL_FILE))
    assert set(final) == planned and max(final.values()) == 1
    assert db.check(out).code == db.EXIT_OK

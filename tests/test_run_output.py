"""What `run` prints: the report's compact table, words instead of dicts, one line for no work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_run_simulated import FAST

REPO = Path(__file__).resolve().parents[1]


def run(providers: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ultra_async", "run", "--simulate", "--providers", str(providers),
         "--models", "all", "--instances", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip


@pytest.mark.slow
def test_run_prints_a_fitting_table_and_a_rerun_says_it_had_nothing_to_do(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(FAST)
    first = run(providers, tmp_path / "out")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if line.lstrip().startswith("model ") and " n " in line)
    assert "95% CI" in header and "success" in header
    sim = next(line for line in lines if line.startswith("simulator:"))
    assert "{" not in sim and "requests" in sim
    again = run(providers, tmp_path / "out")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [again.stdout.strip()]  # one line
    assert again.stdout.startswith("nothing to do: all 15 tests") and "{" not in again.stdout

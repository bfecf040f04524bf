"""kill -9 a real simulated run at random moments, rerun each time: nothing lost, nothing twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from tests.test_run_simulated import FAST
from ultra_async.results.db import check, comparable
from ultra_async.results.storage import read_journal

INSTANCES = 14  # 3 models × 10 prompt types × 5 task types × 14 = 2,100 tests


def command(providers: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ultra_async",
        "run",
        "--simulate",
        "--providers",
        str(providers),
        "--models",
        "all",
        "--prompt-types",
        "all_with_flawed",
        "--instances",
        str(INSTANCES),
        "--seed",
        "5",
        "--out",
        str(out),
        "--quiet",
    ]


def journal_lines(out: Path) -> int:
    path = out / "results.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_and_resume_equals_an_uninterrupted_run(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    providers = write_yaml(FAST)
    planned = 3 * 10 * 5 * INSTANCES

    once = tmp_path / "once"
    done = subprocess.run(
        command(providers, once), cwd=ROOT, capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    killed = tmp_path / "killed"
    rng = random.Random(11)
    kills = 0
    for _ in range(4):
        before = journal_lines(killed)
        proc = subprocess.Popen(
            command(providers, killed),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # wait until this run has journaled something new, then kill it at a random moment
        deadline = time.monotonic() + 60
        while (
            journal_lines(killed) <= before and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 2, "the run finished before it could be killed: make it longer"
    assert journal_lines(killed) < planned

    final = subprocess.run(
        command(providers, killed), cwd=ROOT, capture_output=True, timeout=300, check=False
    )
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    ids = Counter(r.item_id for r in read_journal(killed / "results.jsonl"))
    assert len(ids) == planned and max(ids.values()) == 1  # every item exactly once
    assert check(killed).code == 0
    a = comparable(orjson.loads((once / "master_database.json").read_bytes()))
    b = comparable(orjson.loads((killed / "master_database.json").read_bytes()))
    assert a == b

"""A second Ctrl-C/SIGTERM cancels in-flight tests at once: exit 130 with the interrupted line,
no CancelledError traceback, and a results directory that agrees with itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ultra_async.results import db

# One request per second for the whole shard: every test (several requests) is still running
# long after the first signal, and the grace period outlasts the test, so only the second
# signal can end the run early.
PROVIDERS = """
defaults:
  retry: {max_attempts: 6, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 300}
  grace_s: 300
keys:
  s0: {env: SECOND_K0}
providers:
  lab: {kind: openai, base_url: "https://lab.invalid/v1"}
models:
  qwen2.5-7b-instruct: {provider: lab, strategy: single, keys: [s0], workers: 4, qps: 1}
"""


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if text in path.read_text(encoding="utf-8", errors="replace"):
                return
        except FileNotFoundError:
            pass
        assert proc.poll() is None, f"the run ended early with exit code {proc.returncode}"
        assert time.monotonic() < deadline, f"{text!r} not in {path} after {timeout_s}s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_second_signal_exits_130_without_a_traceback(
    sig: signal.Signals, write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    providers = write_yaml(PROVIDERS)
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ULTRA_ASYNC_")}
    args = [sys.executable, "-m", "ultra_async", "run", "--simulate", "--quiet", "--out", str(out)]
    args += ["--providers", str(providers), "--instances", "4", "--log-level", "info"]
    with open(tmp_path / "output.txt", "wb") as output:
        proc = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(out / "run.log", '"run_started"', proc, timeout_s=60)
            proc.send_signal(sig)
            wait_for(out / "run.log", '"stop_requested"', proc, timeout_s=30)
            proc.send_signal(sig)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    text = (tmp_path / "output.txt").read_text(encoding="utf-8", errors="replace")
    assert code == 130, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert text.strip().splitlines()[-1] == (
        "interrupted: run the same command again to finish the remaining tests"
    )
    assert db.check(out).code == db.EXIT_OK
    assert not list(out.glob(".*.tmp"))

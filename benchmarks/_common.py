"""Shared benchmark helpers: a simulator in its own process, small providers files, timing."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class SimProcess:
    """A `serve-sim` process on 127.0.0.1; the benchmark's client has the other core."""

    proc: subprocess.Popen[str]
    base_url: str

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/sim/stats", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data


def server_lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """A thread reads the server's output to its end (so a chatty server never blocks on a full
    pipe); the lines arrive in the queue, then None."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="bench-server-output", daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], prefix: str, timeout_s: float, what: str) -> str:
    """The first line starting with `prefix` within `timeout_s`; RuntimeError otherwise."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            raise RuntimeError(f"{what} exited before it was ready")
        if line.startswith(prefix):
            return line
    raise RuntimeError(f"{what} did not start in time")


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def sim_process(providers: Path, *args: str, startup_timeout_s: float = 30) -> Iterator[SimProcess]:
    """Start `python -m ultra_async serve-sim` with these providers and options; stop it after."""
    cmd = [sys.executable, "-m", "ultra_async", "serve-sim", "--providers", str(providers), *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = server_lines(proc)
        line = wait_for_line(lines, "simulator listening on ", startup_timeout_s, "serve-sim")
        yield SimProcess(proc, line.split()[-1].strip())
    finally:
        stop_server(proc)


@contextlib.contextmanager
def providers_file(text: str) -> Iterator[Path]:
    """A providers.yaml holding `text`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ua-bench-") as tmp:
        path = Path(tmp) / "providers.yaml"
        path.write_text(text, encoding="utf-8")
        yield path


def single_model_providers(
    *, workers: int, qps: float, burst: int, keys: int = 1, strategy: str = "single"
) -> str:
    """A providers.yaml with one OpenAI-compatible model `bench` over `keys` keys."""
    key_names = [f"bench-{i}" for i in range(keys)]
    key_lines = "\n".join(f"  {k}: {{env: BENCH_KEY_{i}}}" for i, k in enumerate(key_names))
    return f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 1.0, test_deadline_s: 60}}
  burst: {burst}
keys:
{key_lines}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:1/v1"}}
models:
  bench:
    provider: sim
    strategy: {strategy}
    keys: [{", ".join(key_names)}]
    instance_prefix: bench
    workers: {workers}
    qps: {qps}
"""


def machine() -> dict[str, Any]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }

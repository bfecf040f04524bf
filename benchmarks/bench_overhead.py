"""Engine overhead: client CPU time per request, the engine vs a bare aiohttp loop.

Each client runs alone in its own process (`benchmarks/_overhead_client.py`) against the same
minimal loopback server in another process (`benchmarks/_loopback.py`), which answers at once
and is far faster than any client, so it is never the bottleneck. The headline is `cpu_ratio`:
the engine's CPU milliseconds per request (aggregator and journal on) over the bare loop's.
Throughput is kept beside it, and `in_flight_ratio` shows whether workers wait for the results
writer: the median number of tests in flight with the journal on over that without it.
The `workflow` part runs the workflow suite's real evaluate (multi-turn conversations, tool
simulation, scoring) against the simulator in its own process and reports CPU per test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchmarks._common import (
    ROOT,
    providers_file,
    server_lines,
    sim_process,
    single_model_providers,
    stop_server,
    wait_for_line,
)
from ultra_async.engine.collector import YOUNG_THRESHOLD
from ultra_async.sim import fake_secret

REQUESTS = 5000
CONCURRENCY = 256
ROUNDS = 9
WORKFLOW_TESTS = 1000
WORKFLOW_ROUNDS = 2
#: one client run; a run that takes longer than this is a hang, not a measurement
CLIENT_TIMEOUT_S = 300
FIGURES = ("cpu_ms_per_request", "cpu_ms_per_test", "rps", "wall_s", "user_s", "system_s")


@contextlib.contextmanager
def loopback_server(startup_timeout_s: float = 30) -> Iterator[str]:
    """Start `benchmarks._loopback` in its own process; yields its OpenAI base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._loopback"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        lines = server_lines(proc)
        line = wait_for_line(lines, "listening on ", startup_timeout_s, "the loopback server")
        yield line.split()[-1].strip() + "/v1"
    finally:
        stop_server(proc)


def client(mode: str, base_url: str, key: str, out: Path, *extra: str) -> dict[str, Any]:
    """One client process: its figures, parsed from the JSON line it prints."""
    cmd = [sys.executable, "-m", "benchmarks._overhead_client", mode]
    cmd += ["--base-url", base_url, "--key", key, "--out", str(out), *extra]
    env = {k: v for k, v in os.environ.items() if k != "ULTRA_ASYNC_LOOP"}
    done = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} client failed ({done.returncode}): {done.stderr[-2000:]}")
    data: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return data


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in FIGURES}
    out = {k: round(v, 4) for k, v in out.items()}
    if "in_flight_median" in runs[0]:
        out["in_flight_median"] = statistics.median(r["in_flight_median"] for r in runs)
    out["runs_cpu_ms_per_request"] = [r["cpu_ms_per_request"] for r in runs]
    return out


def run() -> dict[str, Any]:
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    # (label, client mode, extra arguments); every label runs once per round, interleaved
    gc_default, gc_raised = ("--young-threshold", "0"), ("--young-threshold", str(YOUNG_THRESHOLD))
    variants = [
        ("bare", "bare", ()),
        ("engine", "engine", ()),
        ("engine_no_journal", "engine_no_journal", ()),
        # what the collector setting is worth: the engine without it, the bare loop with it
        ("engine_default_gc", "engine", gc_default),
        ("bare_raised_gc", "bare", gc_raised),
    ]
    if has_uvloop:
        uv = ("--uvloop",)
        variants += [("bare_uvloop", "bare", uv), ("engine_uvloop", "engine", uv)]
    size = ("--requests", str(REQUESTS), "--concurrency", str(CONCURRENCY))
    # like a real random key, it shares no 4 characters with the journal lines
    key = "sk-loopback-7Qx2Z9"
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="ua-overhead-") as tmp, loopback_server() as url:
        client("bare", url, key, Path(tmp, "warm"), "--requests", "500")
        for r in range(ROUNDS):
            for label, mode, extra in variants:
                runs[label].append(client(mode, url, key, Path(tmp, f"{label}-{r}"), *size, *extra))
        workflow = _workflow(Path(tmp))
    fig = {label: medians(rs) for label, rs in runs.items()}
    # each round's engine run over the bare run just before it: the spread shows the noise
    per_round = [
        round(e["cpu_ms_per_request"] / b["cpu_ms_per_request"], 3)
        for b, e in zip(runs["bare"], runs["engine"], strict=True)
    ]
    bare, engine, alone = fig["bare"], fig["engine"], fig["engine_no_journal"]
    result: dict[str, Any] = {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "rounds": ROUNDS,
        "cpu_ms_per_request_bare": bare["cpu_ms_per_request"],
        "cpu_ms_per_request_engine": engine["cpu_ms_per_request"],
        "cpu_ms_per_request_engine_no_journal": alone["cpu_ms_per_request"],
        "cpu_ratio": round(engine["cpu_ms_per_request"] / bare["cpu_ms_per_request"], 3),
        "cpu_ratio_per_round": per_round,
        "cpu_ratio_per_round_median": round(statistics.median(per_round), 3),
        "cpu_ratio_no_journal": round(alone["cpu_ms_per_request"] / bare["cpu_ms_per_request"], 3),
        # the collector's young-generation threshold (engine/collector.py): the engine with
        # Python's default threshold, and the bare loop given the engine's
        "collector": {
            "young_threshold": YOUNG_THRESHOLD,
            "cpu_ms_per_request_engine_default": fig["engine_default_gc"]["cpu_ms_per_request"],
            "cpu_ms_per_request_bare_raised": fig["bare_raised_gc"]["cpu_ms_per_request"],
            "cpu_ratio_engine_default_vs_bare": round(
                fig["engine_default_gc"]["cpu_ms_per_request"] / bare["cpu_ms_per_request"], 3
            ),
            "cpu_ratio_both_raised": round(
                engine["cpu_ms_per_request"] / fig["bare_raised_gc"]["cpu_ms_per_request"], 3
            ),
        },
        "rps_bare": bare["rps"],
        "rps_engine": engine["rps"],
        "rps_engine_no_journal": alone["rps"],
        "throughput_ratio": round(engine["rps"] / bare["rps"], 3),
        "in_flight_median_journal": engine["in_flight_median"],
        "in_flight_median_no_journal": alone["in_flight_median"],
        "in_flight_ratio": round(engine["in_flight_median"] / alone["in_flight_median"], 3),
    }
    if has_uvloop:
        ub, ue = fig["bare_uvloop"], fig["engine_uvloop"]
        result["uvloop"] = {
            "cpu_ms_per_request_bare": ub["cpu_ms_per_request"],
            "cpu_ms_per_request_engine": ue["cpu_ms_per_request"],
            "cpu_ratio": round(ue["cpu_ms_per_request"] / ub["cpu_ms_per_request"], 3),
            "engine_cpu_gain": round(
                1 - ue["cpu_ms_per_request"] / engine["cpu_ms_per_request"], 3
            ),
            "rps_engine": ue["rps"],
        }
    else:
        result["uvloop"] = "not installed (pip install 'ultra_async[fast]')"
    result["workflow"] = workflow
    result["clients"] = fig
    return result


def _workflow(tmp: Path) -> dict[str, Any]:
    """The workflow suite's evaluate against the simulator (no limits, 0 ms): CPU per test."""
    text = single_model_providers(workers=CONCURRENCY, qps=10_000, burst=1000)
    key = fake_secret("bench-0")
    size = ("--requests", str(WORKFLOW_TESTS), "--concurrency", str(CONCURRENCY))
    runs = []
    with providers_file(text) as providers, sim_process(providers, "--no-limits") as sim:
        for r in range(WORKFLOW_ROUNDS):
            out = tmp / f"workflow-{r}"
            runs.append(client("workflow", sim.openai_base_url, key, out, *size))
    fig = medians(runs)
    return {
        "tests": runs[0]["tests"],
        "requests_per_test": round(runs[0]["requests"] / runs[0]["tests"], 2),
        "cpu_ms_per_test": fig["cpu_ms_per_test"],
        "cpu_ms_per_request": fig["cpu_ms_per_request"],
        "tests_per_s": round(fig["rps"] * runs[0]["tests"] / runs[0]["requests"], 1),
        "in_flight_median": fig["in_flight_median"],
    }


if __name__ == "__main__":
    print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())

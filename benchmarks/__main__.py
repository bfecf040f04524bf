"""Run the benchmarks and write benchmarks/results/latest.json and latest.md.

python -m benchmarks                     # every section
python -m benchmarks overhead rate_fidelity
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks._common import machine
from ultra_async.logs import configure_logging

#: section name → module; each module has `run() -> dict`
SECTIONS = {
    "overhead": "benchmarks.bench_overhead",
    "rate_fidelity": "benchmarks.bench_rate_fidelity",
    "tpm_fidelity": "benchmarks.bench_tpm_fidelity",
    "header_pacing": "benchmarks.bench_header_pacing",
    "overlap": "benchmarks.bench_overlap",
    "makespan": "benchmarks.bench_makespan",
    "aggregator": "benchmarks.bench_aggregator",
    "scale": "benchmarks.bench_scale",
    "replay": "benchmarks.bench_replay",
}
#: section → [(field, comparison, target)]
TARGETS: dict[str, list[tuple[str, str, float]]] = {
    "overhead": [("cpu_ratio", "<=", 1.25), ("in_flight_ratio", ">=", 0.95)],
    "rate_fidelity": [
        ("max_deviation_pct", "<=", 2.0),
        ("provoked_429", "<=", 0),
        ("exact_bucket_efficiency", ">=", 0.97),
        ("exact_bucket_provoked_429", "<=", 3),
    ],
    "tpm_fidelity": [("max_deviation_pct", "<=", 3.0), ("provoked_429", "<=", 0)],
    "header_pacing": [("rate_limited_share", "<=", 0.02)],
    "overlap": [("efficiency", ">=", 0.95)],
    "makespan": [("ratio", "<=", 1.05), ("ratio_dead_deployment", "<=", 1.05)],
    "aggregator": [("max_loop_stall_ms", "<", 20.0)],
    "scale": [("peak_rss_mb", "<", 1024)],
    "replay": [("requests", "<=", 0), ("identical", ">=", 1)],
}
RESULTS = Path(__file__).resolve().parent / "results"


def _verdict(section: str, data: dict[str, Any]) -> str:
    verdicts = []
    for field, op, target in TARGETS.get(section, []):
        value = data.get(field)
        if not isinstance(value, int | float):
            verdicts.append(f"{field}: missing")
            continue
        ok = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        verdicts.append(f"{field} = {value} (target {op} {target:g}: {'met' if ok else 'NOT met'})")
    return "; ".join(verdicts)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# Benchmark results", ""]
    m = summary["machine"]
    lines.append(f"{m['date']} · {m['cpus']} CPUs · Python {m['python']} · {m['platform']}")
    lines.append("")
    for section, data in summary["sections"].items():
        lines.append(f"## {section}")
        lines.append("")
        verdict = _verdict(section, data)
        if verdict:
            lines.append(f"**{verdict}**")
            lines.append("")
        lines.append("```json")
        lines.append(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    configure_logging("warning")
    chosen = argv or list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    summary: dict[str, Any] = {"machine": machine(), "sections": {}}
    latest = RESULTS / "latest.json"
    if set(chosen) != set(SECTIONS) and latest.exists():
        # a partial run updates its sections and keeps the others (each says when it ran)
        summary["sections"] = orjson.loads(latest.read_bytes()).get("sections", {})
    for section in chosen:
        started = time.monotonic()
        print(f"== {section}", flush=True)
        data = importlib.import_module(SECTIONS[section]).run()
        data["bench_wall_s"] = round(time.monotonic() - started, 1)
        data["measured_at"] = summary["machine"]["date"]
        summary["sections"][section] = data
        print(orjson.dumps(data).decode(), flush=True)
        if verdict := _verdict(section, data):
            print(f"   {verdict}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (RESULTS / "latest.md").write_text(markdown(summary), encoding="utf-8")
    print(f"wrote {RESULTS / 'latest.json'} and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

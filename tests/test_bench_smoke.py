"""Every benchmark section's real `run()` at a tiny size: no crash, the same shape.

`make bench` is not run by CI, so a section can rot unnoticed (a providers file that falls
outside new config bounds, a renamed field). Sizes are shrunk through the modules' constants
(read at call time) or `run()`'s arguments. Only structure is checked: the headline fields of
`benchmarks.__main__.TARGETS` and a few others are there and every number is finite. No
target value and no timing is asserted: performance is for `make bench`, not for tests.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.__main__ import SECTIONS, TARGETS


@dataclass(frozen=True)
class Tiny:
    """How one section runs small: module constants to set, arguments for `run()`, checks."""

    constants: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: fields beside the section's TARGETS that the result must have
    fields: tuple[str, ...] = ()
    #: (field, value): the result echoes the tiny size, so the shrinking really took effect
    size: tuple[str, int] | None = None


TINY: dict[str, Tiny] = {
    "overhead": Tiny(
        {
            "REQUESTS": 300,
            "CONCURRENCY": 8,
            "ROUNDS": 1,
            "WORKFLOW_TESTS": 20,
            "WORKFLOW_ROUNDS": 1,
        },
        fields=(
            "cpu_ms_per_request_bare",
            "cpu_ms_per_request_engine",
            "cpu_ratio_per_round",
            "throughput_ratio",
            "collector",
            "uvloop",
            "workflow",
            "clients",
        ),
        size=("requests", 300),
    ),
    "rate_fidelity": Tiny(
        # 3 keys × 50 QPS × 0.2 s = 30 tests
        {"SECONDS": 0.2, "EXACT_REQUESTS": 15},
        fields=("per_key", "efficiency", "tests", "exact_bucket"),
    ),
    "tpm_fidelity": Tiny(
        {"SECONDS": 1, "WARMUP_S": 0.2},
        fields=("per_key", "tests", "wall_s"),
    ),
    "header_pacing": Tiny(
        {"TESTS": 30},
        fields=("makespan_ratio", "openai_headers", "azure_headers"),
    ),
    "overlap": Tiny(
        {"LATENCY_MS": 5.0, "TESTS": 20, "CONCURRENCY": 5, "ROUNDS": 1},
        fields=("bare_efficiency", "rtt_floor_ms", "efficiency_vs_floor", "rounds"),
        size=("tests", 20),
    ),
    "makespan": Tiny(
        # 2 instances × 5 task types per model
        {"INSTANCES": 2},
        fields=("healthy", "dead_deployment_401", "dead_deployment_500"),
        size=("tests", 20),
    ),
    "aggregator": Tiny(
        # one model: 1,000 leaves instead of 5,000
        {"MODELS": ("gpt-4o-mini",)},
        kwargs={"instances": 1, "paced_rate_per_s": 500, "paced_s": 0.2},
        fields=("results_per_s", "bytes_per_result", "paced_db_writes", "full_gc_ms"),
        size=("leaves", 1000),
    ),
    "scale": Tiny(
        # the plan's 2,000 cells at one instance each: the smallest plan the section makes
        {"ITEMS": 2000, "SMALL_BUFFER_ITEMS": 2000, "BUFFER_SIZE": 500},
        fields=("items", "tests_per_s", "db_writes", "server_requests", "small_buffer"),
        size=("items", 2000),
    ),
    "replay": Tiny(
        # 1 model × 10 prompt types × 5 task types
        {"MODELS": "gpt-4o-mini", "INSTANCES": 1},
        fields=("original_requests", "speedup", "cached", "cache_mb"),
        size=("tests", 50),
    ),
}


def test_every_section_has_a_tiny_size() -> None:
    assert set(TINY) == set(SECTIONS)


def _not_finite(value: Any, where: str = "") -> list[str]:
    """Paths of the numbers in `value` that are NaN or infinite."""
    if isinstance(value, dict):
        return [bad for key, v in value.items() for bad in _not_finite(v, f"{where}.{key}")]
    if isinstance(value, list | tuple):
        return [bad for i, v in enumerate(value) for bad in _not_finite(v, f"{where}[{i}]")]
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("section", list(SECTIONS))
def test_section_runs_small(section: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = TINY[section]
    module = importlib.import_module(SECTIONS[section])
    for name, value in tiny.constants.items():
        monkeypatch.setattr(module, name, value)  # raises if the constant is gone

    result = module.run(**tiny.kwargs)

    assert isinstance(result, dict)
    for name, _, _ in TARGETS.get(section, []):
        assert isinstance(result.get(name), int | float), (name, result.get(name))
    missing = [name for name in tiny.fields if name not in result]
    assert not missing, missing
    assert not _not_finite(result)
    if tiny.size is not None:
        name, value = tiny.size
        assert result[name] == value

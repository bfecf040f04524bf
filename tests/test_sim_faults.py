"""Simulator fault rules, the seeded fault picker and the latency distribution."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from ultra_async.sim.faults import FAULT_KINDS, FaultPicker, FaultRule
from ultra_async.sim.latency import Latency


def test_first_matching_rule_applies() -> None:
    dead = FaultRule(model="dep-2", status=500)
    noisy = FaultRule(error_503=0.5)
    picker = FaultPicker([dead, noisy], seed=1)
    assert picker.rule_for("k", "dep-2") is dead
    assert picker.rule_for("k", "dep-1") is noisy
    assert FaultPicker([FaultRule(key="other", hang=1.0)], seed=1).rule_for("k", "m") is None


def test_picks_follow_the_probabilities() -> None:
    rule = FaultRule(error_500=0.1, drop_connection=0.2, hang=0.3)
    picker = FaultPicker([rule], seed=7)
    draws = Counter(picker.pick(rule.edges) for _ in range(20_000))
    assert draws["error_500"] / 20_000 == pytest.approx(0.1, abs=0.015)
    assert draws["drop_connection"] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert draws["hang"] / 20_000 == pytest.approx(0.3, abs=0.015)
    assert draws[None] / 20_000 == pytest.approx(0.4, abs=0.015)
    assert set(draws) == {"error_500", "drop_connection", "hang", None}


def test_picks_are_reproducible_from_the_seed() -> None:
    rule = FaultRule(error_500=0.3, malformed_json=0.3)

    def run(seed: int) -> list[str | None]:
        picker = FaultPicker([rule], seed=seed)
        return [picker.pick(rule.edges) for _ in range(200)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_certain_and_impossible_faults() -> None:
    picker = FaultPicker([], seed=0)
    for kind in FAULT_KINDS:
        rule = FaultRule(**{kind: 1.0})  # type: ignore[arg-type]
        assert {picker.pick(rule.edges) for _ in range(50)} == {kind}
    assert picker.pick(FaultRule().edges) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_500": 1.5},
        {"hang": -0.1},
        {"error_500": 0.6, "error_503": 0.6},
        {"hang_s": -1.0},
        {"hang_s": 10_000.0},
        {"status": 200},
    ],
)
def test_invalid_fault_rules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="FaultRule"):
        FaultRule(**kwargs)  # type: ignore[arg-type]


def test_latency_is_lognormal_around_the_median_and_capped() -> None:
    rng = random.Random(5)
    latency = Latency(median_ms=100.0, sigma=0.5, max_ms=250.0)
    samples = [latency.sample_s(rng) for _ in range(5000)]
    assert statistics.median(samples) == pytest.approx(0.1, rel=0.05)
    assert max(samples) == pytest.approx(0.25)
    assert min(samples) > 0.0


def test_latency_zero_and_constant() -> None:
    rng = random.Random(0)
    assert not Latency().enabled
    assert Latency().sample_s(rng) == 0.0
    assert Latency(median_ms=20.0, sigma=0.0).sample_s(rng) == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"Latency\.median_ms"):
        Latency(median_ms=-1.0)

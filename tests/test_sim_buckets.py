"""Simulator token buckets and rate rules, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from ultra_async.sim.buckets import RateLimiter, RateRule


class FakeClock:
    def __init__(self, now_s: float = 100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def test_burst_then_rejections_with_exact_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter([RateRule(qps=4.0, burst=3)], clock)
    buckets = limiter.buckets_for("k", "m")
    assert [limiter.acquire(buckets) for _ in range(3)] == [0.0, 0.0, 0.0]
    # empty bucket: one token comes back after 1/qps
    assert limiter.acquire(buckets) == pytest.approx(0.25)
    clock.now_s += 0.1
    assert limiter.acquire(buckets) == pytest.approx(0.15)


def test_refill_is_continuous_and_capped_at_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter([RateRule(qps=10.0, burst=2)], clock)
    buckets = limiter.buckets_for("k", "m")
    assert limiter.acquire(buckets) == 0.0
    assert limiter.acquire(buckets) == 0.0
    clock.now_s += 0.1  # exactly one token back
    assert limiter.acquire(buckets) == 0.0
    assert limiter.acquire(buckets) > 0.0
    clock.now_s += 3600.0  # a long idle time refills to burst, not beyond
    assert [limiter.acquire(buckets) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.acquire(buckets) > 0.0


def test_a_rejected_request_takes_no_token_from_any_bucket() -> None:
    clock = FakeClock()
    key_rule = RateRule(key="k", qps=0.001, burst=2)
    model_rule = RateRule(key="k", model="a", qps=0.001, burst=1)
    limiter = RateLimiter([key_rule, model_rule], clock)
    to_a = limiter.buckets_for("k", "a")
    to_b = limiter.buckets_for("k", "b")
    assert len(to_a) == 2 and len(to_b) == 1
    assert limiter.acquire(to_a) == 0.0
    # a's own bucket is empty: rejected, and the key-wide bucket keeps its last token ...
    for _ in range(5):
        assert limiter.acquire(to_a) > 0.0
    # ... which a request for another model on the same key can still use
    assert limiter.acquire(to_b) == 0.0
    assert limiter.acquire(to_b) > 0.0


def test_wait_is_the_longest_of_the_empty_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter([RateRule(qps=10.0, burst=1), RateRule(key="k", qps=2.0, burst=1)], clock)
    buckets = limiter.buckets_for("k", "m")
    assert limiter.acquire(buckets) == 0.0
    assert limiter.acquire(buckets) == pytest.approx(0.5)


def test_rules_match_by_key_and_model() -> None:
    rule = RateRule(key="k", model="m", qps=1.0, burst=1)
    assert rule.matches("k", "m")
    assert not rule.matches("k", "other")
    assert not rule.matches("other", "m")
    assert RateRule(qps=1.0).matches("any", "thing")
    limiter = RateLimiter([rule, RateRule(model="m", qps=1.0)], FakeClock())
    assert len(limiter.buckets_for("k", "m")) == 2
    assert len(limiter.buckets_for("x", "m")) == 1
    assert limiter.buckets_for("x", "y") == ()


def test_waiting_exactly_the_advertised_time_is_enough() -> None:
    clock = FakeClock(0.3)
    limiter = RateLimiter([RateRule(qps=3.0, burst=1)], clock)
    buckets = limiter.buckets_for("k", "m")
    assert limiter.acquire(buckets) == 0.0
    for _ in range(20):
        wait_s = limiter.acquire(buckets)
        assert wait_s > 0.0
        clock.now_s += wait_s
        assert limiter.acquire(buckets) == 0.0


def test_reset_refills() -> None:
    limiter = RateLimiter([RateRule(qps=0.001, burst=1)], FakeClock())
    buckets = limiter.buckets_for("k", "m")
    assert limiter.acquire(buckets) == 0.0
    assert limiter.acquire(buckets) > 0.0
    limiter.reset()
    assert limiter.acquire(buckets) == 0.0


@pytest.mark.parametrize(
    ("qps", "burst"), [(0.0, 1), (-1.0, 1), (float("inf"), 1), (float("nan"), 1), (1.0, 0)]
)
def test_invalid_rules_are_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="RateRule"):
        RateRule(qps=qps, burst=burst)

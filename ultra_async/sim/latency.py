"""Simulated response time: a capped lognormal distribution per model."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Latency:
    """Response time around `median_ms`, lognormal with shape `sigma`, capped at `max_ms`.

    Lognormal because real completion latencies have a long right tail: most answers are
    near the median, a few take several times longer. `median_ms=0` answers at once.
    """

    median_ms: float = 0.0
    sigma: float = 0.5
    max_ms: float = 30_000.0

    def __post_init__(self) -> None:
        for name in ("median_ms", "sigma", "max_ms"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Latency.{name} must be a finite number >= 0 (got {value!r})")

    @property
    def enabled(self) -> bool:
        """Whether responses are delayed at all."""
        return self.median_ms > 0 and self.max_ms > 0

    def sample_s(self, rng: random.Random) -> float:
        """One response time in seconds."""
        if not self.enabled:
            return 0.0
        ms = self.median_ms * math.exp(rng.gauss(0.0, self.sigma)) if self.sigma else self.median_ms
        return min(ms, self.max_ms) / 1000.0

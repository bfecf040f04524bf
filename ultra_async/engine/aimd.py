"""Adaptive control of a shard's ranges: additive increase per quiet interval, halving on 429."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from ..types import Range
from .buckets import Clock


@dataclass(slots=True)
class AimdController:
    """Additive increase per quiet interval, multiplicative decrease on 429, within bounds.

    Only ranges adapt: a fixed number (`qps: 50`) is a Range with min == start == max, so a 429
    pauses the shard but never lowers it. The increase is one step (5 % of max) per
    `increase_every_s` of successes without a 429, whatever the throughput: a busy shard does
    not climb faster than an idle one. A 429 for a request sent before the last decrease is not
    a new signal (it was sent at the old rate), so a burst of 429s from requests already in
    flight halves the rate once.
    """

    workers: Range
    qps: Range
    clock: Clock = time.monotonic
    decrease_factor: float = 0.5
    #: seconds without a 429 per additive step
    increase_every_s: float = 2.0
    cooldown_s: float = 5.0
    current_workers: float = field(init=False)
    current_qps: float = field(init=False)
    _last_step: float = field(init=False, default=0.0)
    _calm_after: float = field(init=False, default=0.0)
    _last_decrease: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self.current_workers = self.workers.start
        self.current_qps = self.qps.start
        self._last_step = self.clock()

    @property
    def adaptive(self) -> bool:
        return self.workers.adaptive or self.qps.adaptive

    def on_success(self) -> bool:
        """Record a success; True when the limits went up (at most one step per interval)."""
        now = self.clock()
        if now < self._calm_after or now - self._last_step < self.increase_every_s:
            return False
        self._last_step = now
        new_qps = self.current_qps
        if self.qps.adaptive:
            new_qps = min(self.qps.max, self.current_qps + max(1.0, self.qps.max / 20))
        new_workers = self.current_workers
        if self.workers.adaptive:
            step = max(1.0, self.workers.max / 20)
            new_workers = min(self.workers.max, self.current_workers + step)
        changed = (new_qps, new_workers) != (self.current_qps, self.current_workers)
        self.current_qps, self.current_workers = new_qps, new_workers
        return changed

    def on_rate_limited(self, retry_after_s: float | None, sent_at: float | None = None) -> bool:
        """Record a 429 for a request sent at `sent_at`; True when the limits went down."""
        now = self.clock()
        if (now if sent_at is None else sent_at) <= self._last_decrease:
            return False
        self._last_decrease = now
        # no increase until the server has had time to recover
        self._calm_after = now + max(self.cooldown_s, retry_after_s or 0.0)
        self._last_step = now
        new_qps = self.current_qps
        if self.qps.adaptive:
            new_qps = max(self.qps.min, self.current_qps * self.decrease_factor)
        new_workers = self.current_workers
        if self.workers.adaptive:
            halved = math.floor(self.current_workers * self.decrease_factor)
            new_workers = max(self.workers.min, halved)
        changed = (new_qps, new_workers) != (self.current_qps, self.current_workers)
        self.current_qps, self.current_workers = new_qps, new_workers
        return changed

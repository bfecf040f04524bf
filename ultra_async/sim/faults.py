"""Fault injection: which requests fail, how, and a seeded choice among the ways."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "rate_limit",
    "error_500",
    "error_503",
    "malformed_json",
    "drop_connection",
    "hang",
    "content_filter",
    "context_length",
]

#: every fault kind, in the order their probabilities are laid out on [0, 1)
FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "error_500",
    "error_503",
    "malformed_json",
    "drop_connection",
    "hang",
    "content_filter",
    "context_length",
)

#: the longest a `hang` may last; a hang is a stall, not a leak of server tasks
MAX_HANG_S = 600.0


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Faults for the requests a rule matches: a probability per kind, or a forced status.

    `key` (key name) and `model` (requested deployment or model) select requests, None matches
    any; the first matching rule applies. `status` answers every matching request with that
    HTTP status (a dead deployment: 500, a disabled key: 401), before rate limits are checked.
    A `hang` waits `hang_s` and then answers normally. A `rate_limit` answers 429 with a
    Retry-After of `retry_after_s`, whatever the buckets hold (a provider under load elsewhere).
    """

    key: str | None = None
    model: str | None = None
    rate_limit: float = 0.0
    retry_after_s: float = 0.2
    error_500: float = 0.0
    error_503: float = 0.0
    malformed_json: float = 0.0
    drop_connection: float = 0.0
    hang: float = 0.0
    hang_s: float = 30.0
    status: int | None = None
    #: 400 `content_filter`, as Azure answers a prompt its filter refuses
    content_filter: float = 0.0
    #: 400 `context_length_exceeded`
    context_length: float = 0.0

    def __post_init__(self) -> None:
        total = 0.0
        for kind in FAULT_KINDS:
            p = getattr(self, kind)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"FaultRule.{kind} must be a probability in [0, 1] (got {p!r})")
            total += p
        if total > 1.0 + 1e-9:
            raise ValueError(f"FaultRule probabilities add up to {total:g}, more than 1")
        if not (0.0 <= self.hang_s <= MAX_HANG_S and math.isfinite(self.hang_s)):
            raise ValueError(
                f"FaultRule.hang_s must be in [0, {MAX_HANG_S:g}] (got {self.hang_s!r})"
            )
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"FaultRule.status must be an HTTP error status (got {self.status!r})")

    def matches(self, key: str, model: str) -> bool:
        """Whether the rule applies to a request with this key name and requested model."""
        return (self.key is None or self.key == key) and (self.model is None or self.model == model)

    @property
    def edges(self) -> tuple[tuple[FaultKind, float], ...]:
        """Each kind with a non-zero probability and the cumulative probability up to it."""
        out: list[tuple[FaultKind, float]] = []
        edge = 0.0
        for kind in FAULT_KINDS:
            p = float(getattr(self, kind))
            if p > 0.0:
                edge += p
                out.append((kind, edge))
        return tuple(out)


class FaultPicker:
    """Draws the fault (or none) for a request with a seeded RNG.

    The draw sequence is fixed by the seed; which request gets which draw depends on arrival
    order, so a sequential client sees the same faults on every run.
    """

    def __init__(self, rules: Sequence[FaultRule], seed: int) -> None:
        self.rules = tuple(rules)
        self._rng = random.Random(f"{seed}:faults")

    def rule_for(self, key: str, model: str) -> FaultRule | None:
        """The first rule matching the request, or None when it runs fault-free."""
        for rule in self.rules:
            if rule.matches(key, model):
                return rule
        return None

    def pick(self, edges: Sequence[tuple[FaultKind, float]]) -> FaultKind | None:
        """One draw: the kind whose slice of [0, 1) it lands in, or None."""
        if not edges:
            return None
        u = self._rng.random()
        for kind, edge in edges:
            if u < edge:
                return kind
        return None

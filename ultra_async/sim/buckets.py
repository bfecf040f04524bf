"""Server-side rate limits: token buckets with continuous refill, selected by rules."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Clock = Callable[[], float]

# Float refill can land a hair below a whole token at exactly the promised time; a client that
# waited the advertised retry-after must not be turned away by rounding.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class RateRule:
    """A server-side limit of `qps` requests per second with bursts of up to `burst`.

    `key` (a key name) and `model` (the name a request asks for: the deployment on the Azure
    route, the model on the OpenAI route) select the requests it applies to; None matches any.
    Each rule is one bucket, shared by every request it matches.
    """

    key: str | None = None
    model: str | None = None
    qps: float = 10.0
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.qps > 0 and math.isfinite(self.qps)):
            raise ValueError(f"RateRule.qps must be a positive number (got {self.qps!r})")
        if self.burst < 1:
            raise ValueError(f"RateRule.burst must be >= 1 (got {self.burst!r})")

    def matches(self, key: str, model: str) -> bool:
        """Whether a request with this key name and requested model counts against the rule."""
        return (self.key is None or self.key == key) and (self.model is None or self.model == model)


class TokenBucket:
    """Float tokens refilled continuously at `qps`, capped at `burst`; one token per request."""

    __slots__ = ("burst", "qps", "tokens", "updated_s")

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = float(burst)
        self.tokens = float(burst)
        # -inf makes the first refill fill the bucket whatever the clock's origin is
        self.updated_s = -math.inf

    def refill(self, now_s: float) -> float:
        """Bring the bucket up to `now_s` and return its tokens."""
        if now_s > self.updated_s:
            self.tokens = min(self.burst, self.tokens + (now_s - self.updated_s) * self.qps)
            self.updated_s = now_s
        return self.tokens

    def wait_s(self) -> float:
        """Seconds until one token is available (0 if one is there now); call after `refill`."""
        missing = 1.0 - self.tokens
        return missing / self.qps if missing > _EPS else 0.0


class RateLimiter:
    """The buckets of a set of rules: a request takes a token from each matching one, or none."""

    def __init__(self, rules: Sequence[RateRule], clock: Clock) -> None:
        self.rules = tuple(rules)
        self._clock = clock
        self._buckets = tuple(TokenBucket(r.qps, r.burst) for r in self.rules)

    def buckets_for(self, key: str, model: str) -> tuple[TokenBucket, ...]:
        """The buckets a request with this key name and requested model draws from."""
        return tuple(
            bucket
            for rule, bucket in zip(self.rules, self._buckets, strict=True)
            if rule.matches(key, model)
        )

    def acquire(self, buckets: Sequence[TokenBucket]) -> float:
        """Take one token from each bucket and return 0, or take nothing and return the wait in s.

        All buckets are checked before any is drawn from, so a rejected request costs nothing:
        a client that is turned away by one limit does not eat into the others.
        """
        now_s = self._clock()
        wait_s = 0.0
        for bucket in buckets:
            if bucket.refill(now_s) < 1.0 - _EPS:
                wait_s = max(wait_s, bucket.wait_s())
        if wait_s > 0.0:
            return wait_s
        for bucket in buckets:
            bucket.tokens -= 1.0
        return 0.0

    def reset(self) -> None:
        """Fill every bucket again."""
        for bucket in self._buckets:
            bucket.tokens = bucket.burst
            bucket.updated_s = -math.inf

"""Server-side rate limits: request and token buckets with continuous refill, selected by rules.

A rule limits requests (`qps`, a bucket of `burst` requests) and/or tokens (`tpm`, a bucket
of one second's tokens, `tpm / 60`). A request is charged its estimated tokens at admission
(prompt at ~4 characters per token, plus `max_tokens` or else the completion it will get),
and the charge is settled to the real usage when it is answered, as the engine does.
"""

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
    #: requests per second; None: no request limit (a token-only rule)
    qps: float | None = 10.0
    burst: int = 1
    #: tokens per minute; None: no token limit
    tpm: float | None = None

    def __post_init__(self) -> None:
        if self.qps is not None and not (self.qps > 0 and math.isfinite(self.qps)):
            raise ValueError(f"RateRule.qps must be a positive number (got {self.qps!r})")
        if self.tpm is not None and not (self.tpm > 0 and math.isfinite(self.tpm)):
            raise ValueError(f"RateRule.tpm must be a positive number (got {self.tpm!r})")
        if self.qps is None and self.tpm is None:
            raise ValueError("RateRule needs qps or tpm")
        if self.burst < 1:
            raise ValueError(f"RateRule.burst must be >= 1 (got {self.burst!r})")

    def matches(self, key: str, model: str) -> bool:
        """Whether a request with this key name and requested model counts against the rule."""
        return (self.key is None or self.key == key) and (self.model is None or self.model == model)


class TokenBucket:
    """Float tokens refilled continuously at `qps`, capped at `burst`; one token per request."""

    __slots__ = ("burst", "qps", "tokens", "updated_s")

    def __init__(self, qps: float, burst: float) -> None:
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

    def wait_s(self, amount: float = 1.0) -> float:
        """Seconds until `amount` may be taken (0 if now); call after `refill`."""
        missing = min(amount, self.burst) - self.tokens
        return missing / self.qps if missing > _EPS else 0.0

    def full_in_s(self) -> float:
        """Seconds until the bucket is full again (OpenAI's `x-ratelimit-reset-*`)."""
        return max(0.0, (self.burst - self.tokens) / self.qps)

    @property
    def per_minute(self) -> float:
        return self.qps * 60.0


class RateLimiter:
    """The buckets of a set of rules: a request takes a token from each matching one, or none."""

    def __init__(self, rules: Sequence[RateRule], clock: Clock) -> None:
        self.rules = tuple(rules)
        self._clock = clock
        self._buckets = tuple(
            TokenBucket(r.qps, r.burst) if r.qps is not None else None for r in self.rules
        )
        self._token_buckets = tuple(
            TokenBucket(r.tpm / 60.0, r.tpm / 60.0) if r.tpm is not None else None
            for r in self.rules
        )

    def buckets_for(self, key: str, model: str) -> tuple[TokenBucket, ...]:
        """The request buckets a request with this key name and requested model draws from."""
        return tuple(
            bucket
            for rule, bucket in zip(self.rules, self._buckets, strict=True)
            if bucket is not None and rule.matches(key, model)
        )

    def token_buckets_for(self, key: str, model: str) -> tuple[TokenBucket, ...]:
        """The token buckets (TPM) a request with this key name and requested model draws from."""
        return tuple(
            bucket
            for rule, bucket in zip(self.rules, self._token_buckets, strict=True)
            if bucket is not None and rule.matches(key, model)
        )

    def acquire(self, buckets: Sequence[TokenBucket]) -> float:
        """Take one request from each bucket and return 0, or nothing and return the wait in s."""
        return self.admit(buckets)[0]

    def admit(
        self,
        buckets: Sequence[TokenBucket],
        token_buckets: Sequence[TokenBucket] = (),
        tokens: float = 0.0,
    ) -> tuple[float, bool]:
        """Take one request from each request bucket and `tokens` from each token bucket.

        Returns (0, _) when admitted, or (wait in s, True when a token limit refused) and takes
        nothing: all buckets are checked before any is drawn from, so a client that is turned
        away by one limit does not eat into the others. A charge larger than a token bucket is
        admitted when the bucket is full and leaves it in debt.
        """
        now_s = self._clock()
        wait_s = 0.0
        by_tokens = False
        for bucket in buckets:
            if bucket.refill(now_s) < 1.0 - _EPS:
                wait_s = max(wait_s, bucket.wait_s())
        for bucket in token_buckets:
            if bucket.refill(now_s) < min(tokens, bucket.burst) - _EPS:
                token_wait = bucket.wait_s(tokens)
                if token_wait > wait_s:
                    wait_s, by_tokens = token_wait, True
        if wait_s > 0.0:
            return wait_s, by_tokens
        for bucket in buckets:
            bucket.tokens -= 1.0
        for bucket in token_buckets:
            bucket.tokens -= tokens
        return 0.0, False

    def settle(self, token_buckets: Sequence[TokenBucket], charged: float, used: float) -> None:
        """Settle an admission charge to the tokens a response really used."""
        now_s = self._clock()
        for bucket in token_buckets:
            bucket.refill(now_s)
            bucket.tokens = min(bucket.burst, bucket.tokens + charged - used)

    def reset(self) -> None:
        """Fill every bucket again."""
        for bucket in (*self._buckets, *self._token_buckets):
            if bucket is not None:
                bucket.tokens = bucket.burst
                bucket.updated_s = -math.inf

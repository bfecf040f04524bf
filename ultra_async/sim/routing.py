"""Resolve each (key name, requested model) pair once: model, buckets, faults, latency, counters."""

from __future__ import annotations

import math
from collections.abc import Mapping

from . import protocol
from .buckets import RateLimiter, TokenBucket
from .counters import Counter, Stats
from .faults import FaultKind, FaultPicker, FaultRule
from .latency import Latency

_NO_FAULTS: tuple[tuple[FaultKind, float], ...] = ()


class SimRoute:
    """Everything the server needs to answer one (key name, requested model) pair."""

    __slots__ = (
        "buckets",
        "edges",
        "fault",
        "key",
        "latency",
        "limit_rpm",
        "limit_tpm",
        "model",
        "real_model",
        "token_buckets",
    )

    def __init__(
        self,
        key: Counter,
        model: Counter,
        real_model: str,
        buckets: tuple[TokenBucket, ...],
        fault: FaultRule | None,
        latency: Latency | None,
        token_buckets: tuple[TokenBucket, ...] = (),
    ) -> None:
        self.key = key
        self.model = model
        self.real_model = real_model
        self.buckets = buckets
        self.fault = fault
        self.edges = fault.edges if fault is not None else _NO_FAULTS
        self.latency = latency if latency is not None and latency.enabled else None
        # OpenAI reports request limits per minute; the tightest bucket is the one that binds
        self.limit_rpm = str(math.floor(min(b.qps for b in buckets) * 60)) if buckets else ""
        self.token_buckets = token_buckets
        self.limit_tpm = (
            math.floor(min(b.per_minute for b in token_buckets)) if token_buckets else 0
        )

    def limit_headers(self, azure: bool) -> dict[str, str]:
        """`x-ratelimit-*` of an admitted request: OpenAI's full set, or Azure's variant.

        Remaining counts are of the emptiest bucket; a reset is the time until that bucket is
        full again. OpenAI also states limits per minute and writes resets as `1s`/`20ms`/`6m0s`;
        the Azure variant has no limits and writes resets in plain seconds.
        """
        headers: dict[str, str] = {}
        if self.buckets:
            low = min(self.buckets, key=lambda b: b.tokens)
            headers["x-ratelimit-remaining-requests"] = str(max(0, int(low.tokens)))
            reset = low.full_in_s()
            if azure:
                headers["x-ratelimit-reset-requests"] = f"{reset:.3f}"
            else:
                headers["x-ratelimit-limit-requests"] = self.limit_rpm
                headers["x-ratelimit-reset-requests"] = protocol.openai_duration(reset)
        if self.token_buckets:
            low = min(self.token_buckets, key=lambda b: b.tokens)
            headers["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(low.tokens)))
            reset = low.full_in_s()
            if azure:
                headers["x-ratelimit-reset-tokens"] = f"{reset:.3f}"
            else:
                headers["x-ratelimit-limit-tokens"] = str(self.limit_tpm)
                headers["x-ratelimit-reset-tokens"] = protocol.openai_duration(reset)
        return headers


class Router:
    """Builds and caches routes, so the hot path is one dict lookup per request."""

    def __init__(
        self,
        *,
        models: Mapping[str, str] | None,
        limiter: RateLimiter,
        faults: FaultPicker,
        latency: Latency | None,
        model_latency: Mapping[str, Latency],
        stats: Stats,
    ) -> None:
        self._models = dict(models) if models is not None else None
        self._limiter = limiter
        self._faults = faults
        self._latency = latency
        self._model_latency = dict(model_latency)
        self._stats = stats
        self._routes: dict[tuple[str, str], SimRoute] = {}

    def get(self, key: str, requested: str) -> SimRoute | None:
        """The route of a request, or None when the requested model or deployment is unknown."""
        route = self._routes.get((key, requested))
        if route is not None:
            return route
        if self._models is None:
            real = requested
        else:
            found = self._models.get(requested)
            if found is None:
                return None
            real = found
        route = SimRoute(
            key=self._stats.key(key),
            model=self._stats.model(requested),
            real_model=real,
            buckets=self._limiter.buckets_for(key, requested),
            fault=self._faults.rule_for(key, requested),
            latency=self._model_latency.get(real, self._latency),
            token_buckets=self._limiter.token_buckets_for(key, requested),
        )
        self._routes[(key, requested)] = route
        return route

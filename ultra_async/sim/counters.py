"""What the simulator saw: requests and outcomes per key, per model and in total."""

from __future__ import annotations

from typing import Any


class Counter:
    """Counts for one key, one requested model, or the whole server.

    Every request ends in exactly one of `ok`, `rate_limited`, `errors[status]` or a fault
    that replaces the answer (`malformed_json`, `drop_connection`, `error_500`, `error_503`).
    A `hang` only delays the answer, so it is counted in `faults` and its outcome as well.
    Memory is constant: first and last arrival times stand in for a timestamp log.
    """

    __slots__ = (
        "errors",
        "faults",
        "first_s",
        "in_flight",
        "last_s",
        "ok",
        "peak_in_flight",
        "rate_limited",
        "requests",
        "tokens",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.errors: dict[int, int] = {}
        self.faults: dict[str, int] = {}
        self.requests = 0
        self.ok = 0
        self.rate_limited = 0
        #: usage (prompt + completion tokens) of the answered requests
        self.tokens = 0
        self.peak_in_flight = 0
        self.first_s: float | None = None
        self.last_s: float | None = None

    def begin(self, now_s: float) -> None:
        """A request arrived."""
        self.requests += 1
        if self.first_s is None:
            self.first_s = now_s
        self.last_s = now_s
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def end(self) -> None:
        """A request left (answered, dropped or cancelled)."""
        self.in_flight -= 1

    def error(self, status: int) -> None:
        """The request was answered with an error status."""
        self.errors[status] = self.errors.get(status, 0) + 1

    def fault(self, kind: str) -> None:
        """A fault was injected into the request."""
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def reset(self) -> None:
        """Zero the counts; requests in flight stay in flight."""
        self.errors = {}
        self.faults = {}
        self.requests = self.ok = self.rate_limited = self.tokens = 0
        self.peak_in_flight = self.in_flight
        self.first_s = self.last_s = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data; `qps` is the mean arrival rate between the first and last request."""
        span_s = 0.0
        if self.first_s is not None and self.last_s is not None:
            span_s = self.last_s - self.first_s
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "tokens": self.tokens,
            "errors": {str(status): n for status, n in sorted(self.errors.items())},
            "faults": dict(sorted(self.faults.items())),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "qps": (self.requests - 1) / span_s if span_s > 0 else None,
        }


class Stats:
    """All counters of one server: `total`, and one per key name and per requested model."""

    def __init__(self) -> None:
        self.total = Counter()
        self.keys: dict[str, Counter] = {}
        self.models: dict[str, Counter] = {}

    def key(self, name: str) -> Counter:
        """The counter of a key name, created on first use."""
        counter = self.keys.get(name)
        if counter is None:
            counter = self.keys[name] = Counter()
        return counter

    def model(self, name: str) -> Counter:
        """The counter of a requested model or deployment, created on first use."""
        counter = self.models.get(name)
        if counter is None:
            counter = self.models[name] = Counter()
        return counter

    def reset(self) -> None:
        """Zero every counter in place (handlers hold references to them)."""
        self.total.reset()
        for counter in (*self.keys.values(), *self.models.values()):
            counter.reset()

    def as_dict(self) -> dict[str, Any]:
        """Plain data, ready for JSON."""
        return {
            "total": self.total.as_dict(),
            "keys": {name: c.as_dict() for name, c in sorted(self.keys.items())},
            "models": {name: c.as_dict() for name, c in sorted(self.models.items())},
        }

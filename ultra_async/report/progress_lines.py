"""The numbers of the progress display: recent rates, each row's done/total and its ETA.

What it shows is measured, not configured: tests/s, requests/s and tokens/min over the last
`window_s` seconds, beside each model's request limit; the ETA comes from that recent rate and is
never negative. A model's done/total never passes 100 %: a shard's total is what it did
(stolen work included) plus what it still holds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rows import model_key

Clock = Callable[[], float]
#: counters of a shard snapshot whose recent rate is measured
_RATED = ("finished", "requests", "tokens")


@dataclass(slots=True)
class Line:
    """One row of the display: a model, one of its shards, or all models."""

    name: str
    done: int
    total: int
    in_flight: int
    tests_per_s: float
    requests_per_s: float
    qps_limit: float
    tokens_per_min: float
    rate_limited: int
    retries: int
    infra_errors: int
    eta_s: float | None
    dead: str | None = None


class Rates:
    """Recent rates of shard counters, from samples of the last `window_s` seconds."""

    def __init__(self, window_s: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._samples: deque[tuple[float, dict[tuple[str, str], tuple[int, ...]]]] = deque(
            maxlen=1024
        )

    def sample(self, shards: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[float]]:
        """Take a sample; per (model, shard): finished tests, requests, tokens per second."""
        now = self.clock()
        counts = {(s["model"], s["shard"]): _counters(s) for s in shards}
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        then, old = self._samples[0]
        span = now - then
        zero = (0,) * len(_RATED)
        return {
            key: [
                max(0.0, (a - b) / span) if span > 0 else 0.0
                for a, b in zip(value, old.get(key, zero), strict=True)
            ]
            for key, value in counts.items()
        }


def _counters(shard: Mapping[str, Any]) -> tuple[int, ...]:
    finished = int(shard["done"]) + int(shard["infra_errors"])
    return (finished, int(shard["requests"]), int(shard.get("tokens", 0)))


def _line(
    name: str,
    shards: Sequence[Mapping[str, Any]],
    rates: Sequence[list[float]],
    *,
    of_shard: bool = False,
) -> Line:
    done = sum(int(s["done"]) + int(s["infra_errors"]) for s in shards)
    # what is left is what the shards still hold: their queues and the tests running now
    left = sum(int(s["queued"]) + int(s["in_flight"]) for s in shards)
    planned = sum(int(s["planned"]) for s in shards)
    # A model's total is its plan; a shard's is what it did plus what it holds: stealing moves
    # work between shards, so a shard's own plan is no bound on what it does.
    total = done + left if of_shard else max(planned, done + left)
    tests_per_s = sum(r[0] for r in rates)
    eta = max(0.0, left / tests_per_s) if tests_per_s > 0 else None
    dead = [s["dead"] for s in shards if s.get("dead")]
    return Line(
        name=name,
        done=done,
        total=total,
        in_flight=sum(int(s["in_flight"]) for s in shards),
        tests_per_s=tests_per_s,
        requests_per_s=sum(r[1] for r in rates),
        qps_limit=sum(float(s["qps"]) for s in shards if not s.get("dead")),
        tokens_per_min=60 * sum(r[2] for r in rates),
        rate_limited=sum(int(s["rate_limited"]) for s in shards),
        retries=sum(int(s["retries"]) for s in shards),
        infra_errors=sum(int(s["infra_errors"]) for s in shards),
        eta_s=0.0 if left == 0 else eta,
        dead=dead[0] if dead and len(dead) == len(shards) else None,
    )


def progress_lines(
    shards: Sequence[Mapping[str, Any]], rates: Mapping[tuple[str, str], list[float]]
) -> tuple[Line, list[tuple[Line, list[Line]]]]:
    """The totals line, then each model's line with its shards' lines (models case-insensitive)."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for shard in shards:
        by_model.setdefault(shard["model"], []).append(shard)
    zero = [0.0] * len(_RATED)

    def rated(group: Sequence[Mapping[str, Any]]) -> list[list[float]]:
        return [rates.get((s["model"], s["shard"]), zero) for s in group]

    models = []
    for model in sorted(by_model, key=model_key):
        group = by_model[model]
        children = [_line(f"  {s['shard']}", [s], rated([s]), of_shard=True) for s in group]
        models.append((_line(model, group, rated(group)), children))
    label = f"all {len(by_model)} models" if len(by_model) != 1 else "all"
    totals = _line(label, shards, rated(shards))
    # models run side by side: everything is done when the slowest model is
    etas = [line.eta_s for line, _ in models if not line.dead]
    totals.eta_s = None if None in etas else max((e or 0.0 for e in etas), default=0.0)
    return totals, models

"""How long a plan takes at the configured request limits: what `plan` prints before a run.

A lower bound: each shard sends at most its `qps` (its maximum), each key at most its own
`qps` across every shard that uses it, and models run side by side. Latency and retries only
add to it. Tests are counted in requests with an average per test (the workflow suite sends
about 4 against the simulator: 1496 requests for 390 tests in `make run`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..planner import Plan

#: average requests per workflow test (measured: 3.8 in the `make run` demo)
REQUESTS_PER_TEST = 4.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """The least time a plan can take at its limits, and what limits it."""

    seconds: float
    #: model (or `key NAME`) whose limit sets the time
    bound_by: str | None
    #: per shard name (model/shard): its least time alone
    shard_seconds: dict[str, float]
    requests: float


def estimate(plan: Plan, config: Config, requests_per_test: float = REQUESTS_PER_TEST) -> Estimate:
    """The least duration of `plan` at the configured limits (0 for an empty plan)."""
    shard_seconds: dict[str, float] = {}
    model_requests: dict[str, float] = {}
    model_qps: dict[str, float] = {}
    key_requests: dict[str, float] = {}
    for sp in plan.shards:
        shard = sp.shard
        requests = len(sp.items) * requests_per_test
        qps = shard.qps.max
        shard_seconds[f"{shard.model}/{shard.name}"] = requests / qps if qps > 0 else 0.0
        model_requests[shard.model] = model_requests.get(shard.model, 0.0) + requests
        model_qps[shard.model] = model_qps.get(shard.model, 0.0) + qps
        key = shard.route.key_name
        key_requests[key] = key_requests.get(key, 0.0) + requests
    bounds: list[tuple[float, str]] = [
        (requests / model_qps[model], model)
        for model, requests in model_requests.items()
        if model_qps[model] > 0
    ]
    for key, requests in key_requests.items():
        spec = config.data.keys.get(key)
        if spec is not None and spec.qps:
            bounds.append((requests / spec.qps, f"key {key}"))
    seconds, bound_by = max(bounds, default=(0.0, None))
    return Estimate(seconds, bound_by, shard_seconds, sum(model_requests.values()))


def duration(seconds: float) -> str:
    """`1:05:09`, `4:07` or `12s`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"

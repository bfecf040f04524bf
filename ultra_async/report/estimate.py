"""How long a plan takes at the configured request limits, and what its priced models will cost:
what `plan` prints before a run.

A lower bound: each shard sends at most its `qps` (its maximum), each key at most its own
`qps` across every shard that uses it, and models run side by side. Latency and retries only
add to it. Tests are counted in requests with an average per test (the workflow suite sends
about 4 against the simulator: 1496 requests for 390 tests in `make run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..planner import Plan
from ..results.storage import JOURNAL_FILE, iter_journal
from ..types import TestResult

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


@dataclass(slots=True)
class CostEstimate:
    """The cost of a plan's tests not journaled yet, from what its tests cost so far.

    Nothing is guessed: a priced model's cost per test is the mean over its completed tests in
    the results directory that sent at least one request (a smoke run, `run --limit 5`,
    measures it); a model without such tests is listed as not measured.
    """

    #: model -> (mean cost per test, tests it is measured over), for measured priced models
    per_test: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: model -> tests of the plan not journaled yet, for every priced model
    remaining: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Expected cost of the remaining tests of the measured models."""
        return sum(cost * self.remaining[m] for m, (cost, _) in self.per_test.items())

    @property
    def unmeasured(self) -> list[str]:
        return [m for m in self.remaining if m not in self.per_test]


def cost_estimate(plan: Plan, config: Config, out_dir: Path) -> CostEstimate:
    """What the plan's priced models will cost, measured on the tests journaled in `out_dir`."""
    priced = sorted(
        {sp.shard.model for sp in plan.shards if config.settings_of(sp.shard.model).price}
    )
    result = CostEstimate()
    if not priced:
        return result
    spent: dict[str, list[float]] = {m: [] for m in priced}
    final: set[str] = set()
    for entry in iter_journal(out_dir / JOURNAL_FILE):
        if not isinstance(entry, TestResult):
            continue
        if entry.is_final:
            final.add(entry.item_id)
        costs = spent.get(entry.model)
        if costs is not None and entry.is_completed and entry.requests > entry.cached_requests:
            costs.append(entry.cost)
    result.remaining = dict.fromkeys(priced, 0)
    for sp in plan.shards:
        if sp.shard.model in result.remaining:
            left = sum(1 for item in sp.items if item.id not in final)
            result.remaining[sp.shard.model] += left
    result.per_test = {m: (sum(c) / len(c), len(c)) for m, c in spent.items() if c}
    return result


def cost_line(estimate: CostEstimate, out_dir: Path) -> str | None:
    """The line `plan` prints about cost (None when no model of the plan has a price)."""
    if not estimate.remaining:
        return None
    parts = []
    if estimate.per_test:
        tests = sum(estimate.remaining[m] for m in estimate.per_test)
        each = ", ".join(
            f"{m} {cost:.4g} a test over {n}" for m, (cost, n) in estimate.per_test.items()
        )
        parts.append(
            f"expected cost: about {estimate.total:.4g} for the {tests} tests not in {out_dir} "
            f"yet ({each}; from the models' price)"
        )
    if estimate.unmeasured:
        parts.append(
            f"cost not measured yet for {', '.join(estimate.unmeasured)}: a smoke run "
            f"(`run --limit 5 --out {out_dir}`) measures it"
        )
    return "; ".join(parts)

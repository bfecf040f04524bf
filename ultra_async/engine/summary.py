"""What a run did: counts by how tests ended, requests, 429s, dead shards, cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import TestResult


@dataclass(slots=True)
class RunSummary:
    """What a run did. `interrupted` runs can be resumed: unfinished items were not recorded."""

    planned: int
    completed: int = 0
    infra_errors: int = 0
    request_errors: int = 0
    evaluate_errors: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    #: requests answered from the response cache (no network, no rate-limit token)
    cached: int = 0
    wall_s: float = 0.0
    interrupted: bool = False
    #: spent on responses, from the models' `price` (0 when none has one)
    cost: float = 0.0
    #: True when the run stopped taking tests because `max_cost` was reached
    cost_capped: bool = False
    dead_shards: dict[str, str] = field(default_factory=dict)
    shards: list[dict[str, Any]] = field(default_factory=list)
    #: each distinct reason a test ended without a result, with how often ("kind: reason")
    error_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.completed + self.infra_errors + self.request_errors + self.evaluate_errors

    def count(self, result: TestResult) -> None:
        """Count a result handed on to `on_result` (and why a test ended without one)."""
        kind = result.outcome
        if kind == "completed":
            self.completed += 1
            return
        if kind == "infra_error":
            self.infra_errors += 1
        elif kind == "request_error":
            self.request_errors += 1
        else:
            self.evaluate_errors += 1
        key = f"{kind}: {result.reason}"
        self.error_reasons[key] = self.error_reasons.get(key, 0) + 1

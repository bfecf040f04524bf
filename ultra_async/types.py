"""Small data types shared by every part of ultra_async."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

Message = Mapping[str, Any]
ApiKind = Literal["openai", "azure"]
Outcome = Literal["completed", "infra_error", "request_error"]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One test to run: a cell of the matrix and the instance number within it."""

    model: str
    prompt_type: str
    tool_success_rate: float
    difficulty: str
    task_type: str
    instance: int

    @property
    def id(self) -> str:
        """Stable id: the same item has the same id in every run, on every machine."""
        return (
            f"{self.model}/{self.prompt_type}/{rate_key(self.tool_success_rate)}/"
            f"{self.difficulty}/{self.task_type}/{self.instance}"
        )

    @property
    def cell(self) -> tuple[str, str, str, str, str]:
        """The database leaf this item counts in (model, prompt, rate key, difficulty, task)."""
        return (
            self.model,
            self.prompt_type,
            rate_key(self.tool_success_rate),
            self.difficulty,
            self.task_type,
        )

    @property
    def seed(self) -> int:
        """A 63-bit seed derived from the id, so each test's randomness is reproducible."""
        digest = hashlib.blake2b(self.id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def seed_with(self, run_seed: int) -> int:
        """The item's seed mixed with a run-level seed (`--seed`)."""
        digest = hashlib.blake2b(f"{run_seed}:{self.id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True, slots=True)
class Route:
    """Where a shard's requests go. Carries the key's *variable name*, never the key."""

    provider: str
    kind: ApiKind
    base_url: str
    key_name: str
    key_env: str
    key_index: int = 0
    deployment: str | None = None
    api_version: str | None = None

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        if self.kind == "azure":
            return (
                f"{base}/openai/deployments/{self.deployment}/chat/completions"
                f"?api-version={self.api_version}"
            )
        return f"{base}/chat/completions"


@dataclass(frozen=True, slots=True)
class Range:
    """A limit that starts at `start` and adapts within [`min`, `max`]."""

    start: float
    min: float
    max: float

    @property
    def adaptive(self) -> bool:
        return self.max > self.start or self.min < self.start


@dataclass(frozen=True, slots=True)
class Shard:
    """One unit of capacity of a model: a key, a deployment, or the single route."""

    name: str
    model: str
    #: the model name sent in requests (the deployment for Azure, the model id otherwise)
    api_model: str
    route: Route
    workers: Range
    qps: Range
    burst: int
    siblings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """The useful part of one chat-completion response."""

    content: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    latency_s: float = 0.0


class ChatFn(Protocol):
    """A chat function bound to one shard: limits, retries and routing are inside."""

    async def __call__(
        self, messages: Sequence[Message], **params: Any
    ) -> ChatResponse: ...  # pragma: no cover


@dataclass(slots=True)
class TestOutcome:
    """What an evaluation returns for one test: the model's result, scored."""

    __test__ = False  # not a pytest test class

    success_level: str = "failure"
    workflow_score: float = 0.0
    phase2_score: float = 0.0
    quality_score: float = 0.0
    final_score: float = 0.0
    turns: int = 0
    tool_calls: int = 0
    tool_coverage_rate: float = 0.0
    error_category: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict[str, Any] = field(default_factory=dict)


Evaluate = Callable[[WorkItem, ChatFn], Awaitable[TestOutcome]]


@dataclass(slots=True)
class TestResult:
    """One finished test (or infra error): the journal line and the aggregator's input."""

    __test__ = False  # not a pytest test class

    item_id: str
    model: str
    prompt_type: str
    tool_success_rate: float
    difficulty: str
    task_type: str
    instance: int
    shard: str
    outcome: Outcome
    execution_time_s: float = 0.0
    requests: int = 0
    retries: int = 0
    infra_reason: str | None = None
    finished_at: float = 0.0
    success_level: str = "failure"
    workflow_score: float = 0.0
    phase2_score: float = 0.0
    quality_score: float = 0.0
    final_score: float = 0.0
    turns: int = 0
    tool_calls: int = 0
    tool_coverage_rate: float = 0.0
    error_category: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_infra_error(self) -> bool:
        return self.outcome == "infra_error"

    @property
    def cell(self) -> tuple[str, str, str, str, str]:
        return (
            self.model,
            self.prompt_type,
            rate_key(self.tool_success_rate),
            self.difficulty,
            self.task_type,
        )

    @classmethod
    def from_outcome(
        cls,
        item: WorkItem,
        shard: str,
        outcome: TestOutcome,
        **extra: Any,
    ) -> TestResult:
        scored = {name: getattr(outcome, name) for name in _OUTCOME_FIELDS}
        return cls(shard=shard, outcome="completed", **_item_fields(item), **scored, **extra)

    @classmethod
    def infra_error(cls, item: WorkItem, shard: str, reason: str, **extra: Any) -> TestResult:
        return cls(
            shard=shard, outcome="infra_error", infra_reason=reason, **_item_fields(item), **extra
        )

    @classmethod
    def request_error(cls, item: WorkItem, shard: str, reason: str, **extra: Any) -> TestResult:
        """A test the API refused for good (e.g. `400 content_filter: ...`); not retried."""
        return cls(
            shard=shard, outcome="request_error", infra_reason=reason, **_item_fields(item), **extra
        )

    def to_record(self) -> dict[str, Any]:
        """A plain dict of every field (`details` is shared, not copied)."""
        return {name: getattr(self, name) for name in _RESULT_ORDER}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TestResult:
        """Build from a journal record; unknown keys (from newer versions) are ignored."""
        known = _RESULT_FIELDS
        return cls(**{k: v for k, v in record.items() if k in known})


def _item_fields(item: WorkItem) -> dict[str, Any]:
    return {
        "item_id": item.id,
        "model": item.model,
        "prompt_type": item.prompt_type,
        "tool_success_rate": item.tool_success_rate,
        "difficulty": item.difficulty,
        "task_type": item.task_type,
        "instance": item.instance,
    }


# field names, computed once: dataclasses.asdict deep-copies and is the slowest part of a result
_OUTCOME_FIELDS = tuple(f.name for f in fields(TestOutcome))
_RESULT_ORDER = tuple(f.name for f in fields(TestResult))
_RESULT_FIELDS = frozenset(_RESULT_ORDER)


def rate_key(rate: float) -> str:
    """The database key of a tool success rate: the rate rounded, as a string (0.8 → "0.8")."""
    return f"{round(rate, 4):g}"

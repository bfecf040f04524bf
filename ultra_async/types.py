"""Small data types shared by every part of ultra_async: no suite's vocabulary here."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Protocol

import orjson

Message = Mapping[str, Any]
ApiKind = Literal["openai", "azure"]
#: how a test ended: a result that counts, or one of three kinds of error counted apart
Kind = Literal["completed", "infra_error", "request_error", "evaluate_error"]
KINDS: tuple[str, ...] = ("completed", "infra_error", "request_error", "evaluate_error")
SUCCESS_LEVELS: tuple[str, ...] = ("full_success", "partial_success", "failure")


@dataclass(frozen=True, slots=True)
class Case:
    """One thing to evaluate: a stable `id`, its value for each of the suite's dimensions, data."""

    id: str
    labels: Mapping[str, str]
    data: Any = None

    def digest(self) -> str:
        """A digest of the labels and data: a case whose digest changed is not the same case."""
        body = orjson.dumps(
            {"labels": dict(self.labels), "data": self.data},
            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
            default=repr,
        )
        return hashlib.blake2b(body, digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One test to run: a model, a case and the instance number; its id never uses a position."""

    model: str
    case: Case
    instance: int
    #: the case's digest when it was planned (kept in the journal to notice changed cases)
    digest: str = ""
    id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.model}/{self.case.id}/{self.instance}")

    @property
    def labels(self) -> Mapping[str, str]:
        return self.case.labels

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
    """A chat function bound to one shard and one test: limits, retries and routing are inside.

    `item` is the work item being run (model, case, instance, seed).
    """

    @property
    def item(self) -> WorkItem: ...  # pragma: no cover

    async def __call__(
        self, messages: Sequence[Message], **params: Any
    ) -> ChatResponse: ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a suite's `evaluate` returns for one test.

    `metrics` are any numeric measures (summed and averaged at every node of the database);
    `details` is free-form and kept in the journal. Tokens left at 0 are filled in from the
    test's chat responses.
    """

    success_level: str = "failure"
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error_category: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def passed(
        cls,
        ok: bool,
        *,
        score: float | None = None,
        metrics: Mapping[str, float] | None = None,
        error_category: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """A pass/fail outcome: full_success or failure, score 1.0/0.0 unless given."""
        return cls(
            "full_success" if ok else "failure",
            score=(1.0 if ok else 0.0) if score is None else score,
            metrics=metrics or {},
            error_category=error_category,
            details=details or {},
        )


Evaluate = Callable[[WorkItem, ChatFn], Awaitable[Outcome]]


@dataclass(slots=True)
class TestResult:
    """One finished test (a result or an error): the journal line and the aggregator's input."""

    __test__ = False  # not a pytest test class

    item_id: str
    model: str
    case_id: str
    instance: int
    labels: dict[str, str]
    shard: str
    outcome: str
    execution_time_s: float = 0.0
    requests: int = 0
    retries: int = 0
    reason: str | None = None
    finished_at: float = 0.0
    success_level: str = "failure"
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error_category: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_requests: int = 0
    cost: float = 0.0
    case_digest: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_infra_error(self) -> bool:
        return self.outcome == "infra_error"

    @property
    def is_completed(self) -> bool:
        return self.outcome == "completed"

    @property
    def is_final(self) -> bool:
        """A record that ends the item for a plain rerun: anything but an infra error."""
        return self.outcome != "infra_error"

    @classmethod
    def from_outcome(
        cls,
        item: WorkItem,
        shard: str,
        outcome: Outcome,
        *,
        execution_time_s: float = 0.0,
        requests: int = 0,
        retries: int = 0,
        finished_at: float = 0.0,
        cached_requests: int = 0,
        cost: float = 0.0,
        **extra: Any,
    ) -> TestResult:
        # Positional, once per test: merging dicts into keyword arguments cost more than the
        # rest of the engine's bookkeeping for a test.
        o, case = outcome, item.case
        result = cls(
            item.id, item.model, case.id, item.instance, dict(case.labels), shard, "completed",
            execution_time_s, requests, retries, None, finished_at, o.success_level, o.score,
            dict(o.metrics), o.error_category, o.input_tokens, o.output_tokens, cached_requests,
            cost, item.digest, dict(o.details),
        )  # fmt: skip
        return replace(result, **extra) if extra else result

    @classmethod
    def error(
        cls,
        kind: str,
        item: WorkItem,
        shard: str,
        reason: str,
        *,
        execution_time_s: float = 0.0,
        requests: int = 0,
        retries: int = 0,
        finished_at: float = 0.0,
        cached_requests: int = 0,
        cost: float = 0.0,
        details: dict[str, Any] | None = None,
        **extra: Any,
    ) -> TestResult:
        """A record of a test that ended without a result (`infra_error`, `request_error`, ...)."""
        case = item.case
        result = cls(
            item.id, item.model, case.id, item.instance, dict(case.labels), shard, kind,
            execution_time_s, requests, retries, reason, finished_at, "failure", None, {}, None,
            0, 0, cached_requests, cost, item.digest, details or {},
        )  # fmt: skip
        return replace(result, **extra) if extra else result

    @classmethod
    def infra_error(cls, item: WorkItem, shard: str, reason: str, **extra: Any) -> TestResult:
        return cls.error("infra_error", item, shard, reason, **extra)

    @classmethod
    def request_error(cls, item: WorkItem, shard: str, reason: str, **extra: Any) -> TestResult:
        """A test the API refused for good (e.g. `400 content_filter: ...`); not retried."""
        return cls.error("request_error", item, shard, reason, **extra)

    @classmethod
    def evaluate_error(cls, item: WorkItem, shard: str, reason: str, **extra: Any) -> TestResult:
        return cls.error("evaluate_error", item, shard, reason, **extra)

    def to_record(self) -> dict[str, Any]:
        """A plain dict of every field (`details` is shared, not copied)."""
        return {name: getattr(self, name) for name in _RESULT_ORDER}


#: field names, computed once: dataclasses.asdict deep-copies and is the slowest part of a result
_RESULT_ORDER = tuple(f.name for f in fields(TestResult))
RESULT_FIELDS = frozenset(_RESULT_ORDER)

"""Pure planning: a suite's cases × models × instances, minus the journal, become shards with work.

A work item is (model, case id, instance); its id never depends on a position, so reordering or
filtering the cases and rerunning skips exactly the items already journaled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .config import Config
from .errors import PlanError
from .naming import ModelNames
from .types import Case, Route, Shard, WorkItem

#: tests one plan may hold (each costs about 400 bytes for the whole run, its id included)
MAX_PLAN_ITEMS = 2_000_000


@dataclass(frozen=True, slots=True)
class Matrix:
    """What a run evaluates: every case for every model, `instances` times."""

    models: tuple[str, ...]
    cases: tuple[Case, ...]
    instances: int = 1

    @property
    def cells(self) -> int:
        return len(self.models) * len(self.cases)

    @property
    def size(self) -> int:
        return self.cells * self.instances

    def items(self, digests: Mapping[str, str] | None = None) -> Iterator[WorkItem]:
        """Every work item, lazily, model by model (`digests` by case id, if computed already)."""
        if digests is None:
            digests = {case.id: case.digest() for case in self.cases}
        for model in self.models:
            for case in self.cases:
                digest = digests[case.id]
                for i in range(self.instances):
                    yield WorkItem(model, case, i, digest)


def _split(value: str | Iterable[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if isinstance(p, str) and p.strip()]


def choose(kind: str, value: str | Iterable[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """Names from a comma list (or `all`), each checked against `allowed`; PlanError otherwise."""
    chosen: list[str] = []
    for part in _split(value):
        if part == "all":
            chosen.extend(allowed)
        elif part in allowed:
            chosen.append(part)
        else:
            raise PlanError(f"unknown {kind} {part!r}; choose from: all, {', '.join(allowed)}")
    if not chosen:
        raise PlanError(f"no {kind} given; choose from: all, {', '.join(allowed)}")
    return tuple(dict.fromkeys(chosen))


def select_models(config: Config, models: str | Iterable[str] = "all") -> tuple[str, ...]:
    """Model names from a comma list (or `all`), each checked against providers.yaml."""
    return choose("model", models, list(config.models))


def build_matrix(
    config: Config,
    cases: Sequence[Case],
    *,
    models: str | Iterable[str] = "all",
    instances: int = 1,
) -> Matrix:
    """Validate the models and instances of a run against the config; refuse a plan too large."""
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
        raise PlanError(f"instances must be a whole number >= 1 (got {instances!r})")
    chosen = select_models(config, models)
    size = len(chosen) * len(cases) * instances
    if size > MAX_PLAN_ITEMS:
        raise PlanError(
            f"the plan has {size:,} tests ({len(chosen)} models × {len(cases)} cases × "
            f"{instances} instances), more than the {MAX_PLAN_ITEMS:,} one run can hold; "
            "lower --instances or split the run (e.g. a few --models at a time)"
        )
    return Matrix(chosen, tuple(cases), instances)


def build_shards(config: Config, model: str) -> list[Shard]:
    """The shards of one model, by its strategy: one per key, one per deployment, or one."""
    spec = config.models[model]
    provider = config.data.providers[spec.provider]
    base_url = config.base_url_of(spec.provider)
    burst = spec.burst or config.data.defaults.burst

    def route(key_index: int, deployment: str | None) -> Route:
        key = spec.keys[key_index % len(spec.keys)]
        return Route(
            provider=spec.provider,
            kind=provider.kind,
            base_url=base_url,
            key_name=key,
            key_env=config.data.keys[key].env or "",
            key_index=key_index % len(spec.keys),
            deployment=deployment,
            api_version=provider.api_version,
        )

    api_model = spec.api_model or model
    first: str | None = spec.deployments[0] if spec.deployments else None
    azure = provider.kind == "azure"
    # (shard name, model name sent in requests, route)
    named: list[tuple[str, str, Route]] = []
    if spec.strategy == "keys":
        prefix = spec.instance_prefix or model
        for i in range(len(spec.keys)):
            sent = first or api_model
            named.append((f"{prefix}-key{i}", sent, route(i, sent if azure else None)))
    elif spec.strategy == "instances":
        for i, dep in enumerate(spec.deployments or []):
            named.append((dep, dep, route(i, dep if azure else None)))
    else:
        sent = first or api_model
        named.append((first or model, sent, route(0, sent if azure else None)))

    names = tuple(n for n, _, _ in named)
    return [
        Shard(
            name=name,
            model=model,
            api_model=sent_model,
            route=r,
            workers=spec.workers,
            qps=spec.qps,
            burst=burst,
            siblings=tuple(n for n in names if n != name),
        )
        for name, sent_model, r in named
    ]


@dataclass(slots=True)
class ShardPlan:
    """A shard and the work items assigned to it."""

    shard: Shard
    items: list[WorkItem] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """The shards of every model with their work; `skipped` were already done.

    `changed` lists items whose case (labels or data) changed since they were journaled:
    skipped unless the run reruns changed cases.
    """

    matrix: Matrix
    shards: list[ShardPlan]
    skipped: int = 0
    changed: list[str] = field(default_factory=list)
    #: item ids planned again although the journal holds a final record for them
    replacing: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(len(sp.items) for sp in self.shards)

    def by_model(self) -> dict[str, list[ShardPlan]]:
        out: dict[str, list[ShardPlan]] = {}
        for sp in self.shards:
            out.setdefault(sp.shard.model, []).append(sp)
        return out


#: what the journal says of an item: (kind of its final record, the case digest it was run with)
Journaled = Mapping[str, tuple[str, str]]


def make_plan(
    config: Config,
    matrix: Matrix,
    done: Journaled | Iterable[str] = (),
    *,
    retry_errors: bool = False,
    rerun_changed: bool = False,
) -> Plan:
    """Shards for every model with the matrix's items minus those done, split evenly.

    `done` maps item ids to the kind and case digest of their final journal record (a plain set
    of ids means completed with an unknown digest). A request or evaluate error is final unless
    `retry_errors`; an item whose case changed is reported in `changed` and rerun only with
    `rerun_changed`. Items go round-robin over a model's shards, so shard sizes differ by at
    most one and every shard gets a mix of cases.
    """
    journaled: Journaled = (
        done if isinstance(done, Mapping) else {item_id: ("completed", "") for item_id in done}
    )
    shards: list[ShardPlan] = []
    plan = Plan(matrix, shards)
    digests = {case.id: case.digest() for case in matrix.cases}
    for model in matrix.models:
        model_shards = [ShardPlan(s) for s in build_shards(config, model)]
        n = len(model_shards)
        assigned = 0
        for item in Matrix((model,), matrix.cases, matrix.instances).items(digests):
            state = journaled.get(item.id) if journaled else None
            if state is not None:
                kind, digest = state
                changed = bool(digest) and digest != item.digest
                if changed:
                    plan.changed.append(item.id)
                redo = (retry_errors and kind != "completed") or (rerun_changed and changed)
                if not redo:
                    plan.skipped += 1
                    continue
                plan.replacing.add(item.id)
            model_shards[assigned % n].items.append(item)
            assigned += 1
        shards.extend(model_shards)
    return plan


def model_names(config: Config) -> ModelNames:
    """The normalizer for this config: deployments and virtual key instances map to their model."""
    instances: dict[str, str] = {}
    prefixes: dict[str, list[str]] = {}
    for model in config.models:
        for shard in build_shards(config, model):
            if shard.name != model and shard.route.deployment == shard.name:
                instances[shard.name] = model
        spec = config.models[model]
        if spec.strategy == "keys":
            prefixes.setdefault((spec.instance_prefix or model).lower(), []).append(model)
    return ModelNames(config.models, instances, prefixes)

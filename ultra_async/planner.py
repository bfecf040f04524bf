"""Pure planning: a test matrix and a config become shards, each with its share of work items."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .config import Config
from .errors import PlanError
from .naming import ModelNames
from .suites.workflow.dimensions import (
    DEFAULT_DIFFICULTY,
    DEFAULT_TOOL_SUCCESS_RATE,
    DIFFICULTIES,
    PROMPT_TYPE_GROUPS,
    PROMPT_TYPES,
    TASK_TYPES,
)
from .types import Route, Shard, WorkItem


@dataclass(frozen=True, slots=True)
class Matrix:
    """The test matrix: every combination of the dimensions, `instances` times."""

    models: tuple[str, ...]
    prompt_types: tuple[str, ...] = ("optimal",)
    tool_success_rates: tuple[float, ...] = (DEFAULT_TOOL_SUCCESS_RATE,)
    difficulties: tuple[str, ...] = (DEFAULT_DIFFICULTY,)
    task_types: tuple[str, ...] = TASK_TYPES
    instances: int = 1

    @property
    def cells(self) -> int:
        return (
            len(self.models)
            * len(self.prompt_types)
            * len(self.tool_success_rates)
            * len(self.difficulties)
            * len(self.task_types)
        )

    @property
    def size(self) -> int:
        return self.cells * self.instances

    def items(self) -> Iterator[WorkItem]:
        """Every work item, lazily, model by model."""
        for model in self.models:
            for prompt in self.prompt_types:
                for rate in self.tool_success_rates:
                    for difficulty in self.difficulties:
                        for task in self.task_types:
                            for i in range(self.instances):
                                yield WorkItem(model, prompt, rate, difficulty, task, i)


def _split(value: str | Iterable[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p and p.strip()]


def _choose(kind: str, value: str | Iterable[str], allowed: Sequence[str]) -> tuple[str, ...]:
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


def parse_prompt_types(value: str | Iterable[str]) -> tuple[str, ...]:
    """`optimal,cot`, or a group: `all` (baseline, cot, optimal), `all_with_flawed`, `flawed`."""
    chosen: list[str] = []
    for part in _split(value):
        if part in PROMPT_TYPE_GROUPS:
            chosen.extend(PROMPT_TYPE_GROUPS[part])
        elif part in PROMPT_TYPES:
            chosen.append(part)
        else:
            groups = ", ".join(PROMPT_TYPE_GROUPS)
            raise PlanError(
                f"unknown prompt type {part!r}; choose from: {groups}, {', '.join(PROMPT_TYPES)}"
            )
    if not chosen:
        raise PlanError("no prompt type given")
    return tuple(dict.fromkeys(chosen))


def parse_rates(value: str | Iterable[str | float]) -> tuple[float, ...]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    rates: list[float] = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue
        try:
            rate = float(part)
        except ValueError:
            raise PlanError(f"tool success rate {part!r} is not a number; use e.g. 0.8") from None
        if not 0.0 < rate <= 1.0:
            raise PlanError(f"tool success rate {rate:g} must be in (0, 1]")
        rates.append(rate)
    if not rates:
        raise PlanError("no tool success rate given; use e.g. 0.8")
    return tuple(dict.fromkeys(rates))


def build_matrix(
    config: Config,
    *,
    models: str | Iterable[str] = "all",
    prompt_types: str | Iterable[str] = "optimal",
    rates: str | Iterable[str | float] = (DEFAULT_TOOL_SUCCESS_RATE,),
    difficulties: str | Iterable[str] = DEFAULT_DIFFICULTY,
    task_types: str | Iterable[str] = "all",
    instances: int = 1,
) -> Matrix:
    """Validate matrix options (as the CLI spells them) against the config."""
    if instances < 1:
        raise PlanError(f"instances must be >= 1 (got {instances})")
    return Matrix(
        models=_choose("model", models, list(config.models)),
        prompt_types=parse_prompt_types(prompt_types),
        tool_success_rates=parse_rates(rates),
        difficulties=_choose("difficulty", difficulties, DIFFICULTIES),
        task_types=_choose("task type", task_types, TASK_TYPES),
        instances=instances,
    )


#: the matrix options, spelled as the CLI flags and RunOptions fields are
MATRIX_OPTIONS = ("models", "prompt_types", "rates", "difficulties", "task_types", "instances")


def matrix_from(config: Config, options: object) -> Matrix:
    """`build_matrix` from anything with the matrix options as attributes (flags, RunOptions)."""
    return build_matrix(config, **{name: getattr(options, name) for name in MATRIX_OPTIONS})


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
    """The shards of every model in the matrix with their work; `skipped` were already done."""

    matrix: Matrix
    shards: list[ShardPlan]
    skipped: int = 0

    @property
    def total(self) -> int:
        return sum(len(sp.items) for sp in self.shards)

    def by_model(self) -> dict[str, list[ShardPlan]]:
        out: dict[str, list[ShardPlan]] = {}
        for sp in self.shards:
            out.setdefault(sp.shard.model, []).append(sp)
        return out


def make_plan(config: Config, matrix: Matrix, done: Collection[str] = ()) -> Plan:
    """Shards for every model with the matrix's items minus `done` (item ids), split evenly.

    Items go round-robin over a model's shards, so shard sizes differ by at most one and every
    shard gets a mix of cells.
    """
    shards: list[ShardPlan] = []
    skipped = 0
    for model in matrix.models:
        model_shards = [ShardPlan(s) for s in build_shards(config, model)]
        n = len(model_shards)
        assigned = 0
        per_model = Matrix(
            (model,),
            matrix.prompt_types,
            matrix.tool_success_rates,
            matrix.difficulties,
            matrix.task_types,
            matrix.instances,
        )
        for item in per_model.items():
            if done and item.id in done:
                skipped += 1
                continue
            model_shards[assigned % n].items.append(item)
            assigned += 1
        shards.extend(model_shards)
    return Plan(matrix, shards, skipped)


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

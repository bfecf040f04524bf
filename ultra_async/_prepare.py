"""Everything that can refuse a run, checked before a file is written or a request is sent."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from .config import Config, load_config
from .errors import ConfigError, PlanError
from .planner import Matrix, Plan, build_matrix, make_plan
from .results.cache import CACHE_MODES
from .results.transcripts import TRANSCRIPT_MODES
from .suites.suite import Suite
from .types import Case

if TYPE_CHECKING:
    from .runner import RunOptions


def suite_of(options: RunOptions) -> Suite:
    """The suite a run evaluates: the one given, or the workflow benchmark over the matrix."""
    if options.suite is not None:
        if not isinstance(options.suite, Suite):
            raise PlanError(f"suite must be a Suite, not {type(options.suite).__name__}")
        return options.suite
    from .suites.workflow.suite import workflow_suite

    return workflow_suite(
        prompt_types=options.prompt_types,
        rates=options.rates,
        difficulties=options.difficulties,
        task_types=options.task_types,
        seed=options.seed,
    )


@dataclass(slots=True)
class Prepared:
    """A run checked before anything is written: its suite, matrix, keys and base URLs."""

    suite: Suite
    matrix: Matrix
    keys: dict[str, SecretStr] | None
    base_urls: dict[str, str]


def prepare(options: RunOptions, config: Config) -> Prepared:
    """Everything that can refuse a run, checked before a single file is written or request sent:
    the suite and its cases, the models, the plan's size, base URLs, and (unless simulated) keys.
    """
    _check_recording_options(options)
    suite = suite_of(options)
    cases = select_cases(suite.load_cases(), options.limit, options.sample, options.seed)
    matrix = build_matrix(config, cases, models=options.models, instances=options.instances)
    for model in matrix.models:
        config.base_url_of(config.models[model].provider)
    keys: dict[str, SecretStr] | None = None
    if options.cache == "only":
        # answered from the cache alone: no key is needed, none is sent
        keys = {name: SecretStr("cache-only-no-key") for name in config.data.keys}
    elif not options.simulate:
        keys = _given_keys(config, options, matrix.models)
    return Prepared(suite, matrix, keys, _base_urls(config, options))


def plan_only(options: RunOptions, config: Config | None = None) -> Plan:
    """The plan of a run before anything runs (no journal subtracted): what `plan` shows."""
    config = config or load_config(options.providers)
    cases = select_cases(
        suite_of(options).load_cases(), options.limit, options.sample, options.seed
    )
    matrix = build_matrix(config, cases, models=options.models, instances=options.instances)
    return make_plan(config, matrix)


def _given_keys(config: Config, options: RunOptions, models: Iterable[str]) -> dict[str, SecretStr]:
    """Secrets for the models' keys: `options.keys` first, then the environment."""
    given = {
        name: value if isinstance(value, SecretStr) else SecretStr(str(value))
        for name, value in (options.keys or {}).items()
    }
    unknown = sorted(set(given) - set(config.data.keys))
    if unknown:
        raise ConfigError(
            f"keys= names {', '.join(unknown)}, not a key of providers.yaml "
            f"(its keys: {', '.join(config.data.keys)})"
        )
    needed = {key for model in models for key in config.models[model].keys}
    from_env = needed - set(given)
    if from_env:
        resolved = config.resolve_keys([m for m in models if set(config.models[m].keys) & from_env])
        given.update({k: v for k, v in resolved.items() if k in from_env})
    return given


def _base_urls(config: Config, options: RunOptions) -> dict[str, str]:
    urls = dict(options.base_urls or {})
    unknown = sorted(set(urls) - set(config.data.providers))
    if unknown:
        raise ConfigError(
            f"base_urls= names {', '.join(unknown)}, not a provider of providers.yaml "
            f"(its providers: {', '.join(config.data.providers)})"
        )
    return urls


def _check_recording_options(options: RunOptions) -> None:
    if options.transcripts not in TRANSCRIPT_MODES:
        raise ConfigError(
            f"transcripts must be one of {', '.join(TRANSCRIPT_MODES)} "
            f"(got {options.transcripts!r})"
        )
    if options.cache not in CACHE_MODES:
        raise ConfigError(f"cache must be one of {', '.join(CACHE_MODES)} (got {options.cache!r})")
    if options.cache_dir is not None:
        options.cache_dir = Path(options.cache_dir)


def select_cases(
    cases: Sequence[Case], limit: int | None, sample: float | None, seed: int
) -> list[Case]:
    """A smoke run's cases: a seeded `sample` fraction (each case kept by a digest of its id and
    the seed, so the choice does not depend on order), then at most `limit`, in suite order."""
    chosen = list(cases)
    if sample is not None:
        if not 0.0 < sample <= 1.0:
            raise PlanError(f"sample must be a fraction in (0, 1] (got {sample!r})")
        chosen = [case for case in chosen if _fraction(case.id, seed) < sample]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise PlanError(f"limit must be a whole number >= 1 (got {limit!r})")
        chosen = chosen[:limit]
    if not chosen:
        raise PlanError(f"the sample of {sample} kept none of the {len(cases)} cases; raise it")
    return chosen


def _fraction(case_id: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{case_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64

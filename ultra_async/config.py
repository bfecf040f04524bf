"""Configuration: load and validate providers.yaml, resolve keys from the environment."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._input import (
    check_keys,
    format_validation_error,
    key_lines,
    one_line,
    parse_yaml,
    read_text,
    shape_problems,
    url_problem,
)
from .config_extras import (
    GenerationSettings,
    KeyExtras,
    ModelExtras,
    ProviderExtras,
    add_keyless_keys,
    generation_settings,
)
from .errors import ConfigError, MissingKeysError
from .types import Range

#: `qps` left out: no request-rate limit at all (a local server)
UNLIMITED = Range(start=math.inf, min=math.inf, max=math.inf)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shapes of real API keys: such a value in providers.yaml is a leaked secret, not a variable.
_SECRET_SHAPE = re.compile(r"^(sk-|sk_|Bearer\s)|^[A-Za-z0-9]{32,}$")

# Upper bounds: far above any real provider, low enough that a typo cannot exhaust memory,
# stall the event loop or overflow a timer. docs/providers.md lists them.
MAX_WORKERS = 1000
MAX_QPS = 10_000.0
#: one request in about 17 minutes; below this a token bucket's timers stop making sense
MIN_QPS = 0.001
MAX_BURST = 1000
MAX_IN_FLIGHT = 10_000
MAX_TIMEOUT_S = 86_400.0
MAX_GRACE_S = 3600.0
MAX_ROUTES = 100


class Settings(BaseSettings):
    """Process-level settings, overridable by ULTRA_ASYNC_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="ULTRA_ASYNC_", extra="ignore")

    providers: Path = Path("providers.yaml")
    out: Path = Path("results")
    log_level: str = "info"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Timeouts(_Strict):
    """Socket timeouts of one request, in seconds."""

    connect_s: float = Field(10.0, gt=0, le=MAX_TIMEOUT_S)
    #: a non-streaming completion sends nothing until the model is done, so by default the
    #: read timeout is the total: a reasoning model may think for minutes
    read_s: float = Field(300.0, gt=0, le=MAX_TIMEOUT_S)
    total_s: float = Field(300.0, gt=0, le=MAX_TIMEOUT_S)


class RetryPolicy(_Strict):
    """How often and how long one request is retried, and how long one test may take."""

    max_attempts: int = Field(6, ge=1, le=100)
    base_delay_s: float = Field(1.0, gt=0, le=MAX_TIMEOUT_S)
    max_delay_s: float = Field(60.0, gt=0, le=MAX_TIMEOUT_S)
    test_deadline_s: float = Field(900.0, gt=0, le=MAX_TIMEOUT_S)


class Defaults(_Strict):
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    #: requests a token bucket may send back to back; small so no server-side burst is exceeded
    burst: int = Field(2, ge=1, le=MAX_BURST)
    #: seconds in-flight tests may finish after Ctrl-C before they are cancelled
    grace_s: float = Field(10.0, ge=0, le=MAX_GRACE_S)


class KeySpec(_Strict, KeyExtras):
    """A named API key: where it comes from and the limits shared by everything that uses it.

    Without `env` the key is empty and no auth header is sent (a local, keyless server).
    """

    env: str | None = None
    qps: float | None = Field(None, ge=MIN_QPS, le=MAX_QPS)
    max_in_flight: int | None = Field(None, ge=1, le=MAX_IN_FLIGHT)
    burst: int | None = Field(None, ge=1, le=MAX_BURST)

    @field_validator("env")
    @classmethod
    def _env_is_a_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _SECRET_SHAPE.search(value):
            raise ValueError(
                "looks like an API key, not an environment variable name; "
                "put the key in the environment and name the variable here"
            )
        if not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid environment variable name")
        return value


class ProviderSpec(_Strict, ProviderExtras):
    """How to reach one API."""

    kind: Literal["openai", "azure"]
    base_url: str
    base_url_env: str | None = None
    api_version: str | None = None
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None

    @field_validator("base_url")
    @classmethod
    def _is_http(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @model_validator(mode="after")
    def _azure_needs_version(self) -> ProviderSpec:
        if self.kind == "azure" and not self.api_version:
            raise ValueError('api_version is required for kind azure (e.g. "2024-12-01-preview")')
        return self


def _parse_range(value: Any, *, integer: bool, upper: float, lower: float = 0.0) -> Range:
    """Accept `10` or `{start: 50, max: 100, min: 1}`."""
    try:
        return _range(value, integer=integer, upper=upper, lower=lower)
    except OverflowError:
        raise ValueError(f"must be at most {upper:g}") from None


def _range(value: Any, *, integer: bool, upper: float, lower: float) -> Range:
    if isinstance(value, bool):
        raise ValueError("must be a number or {start, max}")
    if isinstance(value, int | float):
        # a plain number is fixed: it never adapts, up or down
        start = maximum = float(value)
        minimum: float | None = start
    elif isinstance(value, Mapping):
        unknown = set(value) - {"start", "max", "min"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: start, max, min")
        if "start" not in value:
            raise ValueError("needs start (and optionally max, min)")
        try:
            start = float(value["start"])
            maximum = float(value.get("max", start))
            minimum = float(value["min"]) if "min" in value else None
        except (TypeError, ValueError):
            raise ValueError("start, max and min must be numbers") from None
    else:
        raise ValueError("must be a number or {start, max}")
    if not all(math.isfinite(x) for x in (start, maximum, minimum or 1.0)):
        raise ValueError("must be a finite number")
    if start <= 0 or maximum <= 0 or (minimum is not None and minimum <= 0):
        raise ValueError("must be > 0")
    if maximum > upper:
        raise ValueError(f"must be at most {upper:g}")
    if maximum < start:
        raise ValueError(f"max ({maximum:g}) must be >= start ({start:g})")
    if minimum is None:
        minimum = min(start, 1.0)
    if minimum > start:
        raise ValueError(f"min ({minimum:g}) must be <= start ({start:g})")
    if integer and any(x != int(x) for x in (start, maximum, minimum)):
        raise ValueError("must be whole numbers")
    if minimum < lower:
        raise ValueError(f"must be at least {lower:g}")
    return Range(start=start, min=minimum, max=maximum)


class ModelSpec(_Strict, ModelExtras):
    """One model: its provider, how its capacity is split into shards, and per-shard limits."""

    provider: str
    strategy: Literal["keys", "instances", "single"]
    keys: list[str] = Field(min_length=1, max_length=MAX_ROUTES)
    deployments: list[str] | None = Field(None, max_length=MAX_ROUTES)
    instance_prefix: str | None = None
    #: the model name sent in requests, when it differs from the entry's name
    api_model: str | None = None
    workers: Range
    qps: Range = UNLIMITED
    burst: int | None = Field(None, ge=1, le=MAX_BURST)

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Range:
        if isinstance(value, Range):
            return value
        return _parse_range(value, integer=True, upper=MAX_WORKERS)

    @field_validator("qps", mode="before")
    @classmethod
    def _qps(cls, value: Any) -> Range:
        return (
            value
            if isinstance(value, Range)
            else _parse_range(value, integer=False, upper=MAX_QPS, lower=MIN_QPS)
        )

    @model_validator(mode="after")
    def _strategy_shape(self) -> ModelSpec:
        if self.strategy == "instances" and not self.deployments:
            raise ValueError("deployments: strategy 'instances' needs a list of deployment names")
        if self.strategy == "single" and (len(self.keys) != 1 or len(self.deployments or []) > 1):
            raise ValueError("strategy 'single' takes exactly one key and at most one deployment")
        if self.strategy == "keys" and self.deployments and len(self.deployments) > 1:
            raise ValueError("strategy 'keys' takes at most one deployment")
        return self


class ProvidersFile(BaseModel):
    """The whole of providers.yaml. Top-level keys starting with `x-` hold YAML anchors."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    keys: dict[str, KeySpec]
    providers: dict[str, ProviderSpec] = Field(min_length=1)
    models: dict[str, ModelSpec] = Field(min_length=1)

    _keyless = model_validator(mode="before")(add_keyless_keys)

    @model_validator(mode="after")
    def _references(self) -> ProvidersFile:
        for extra in self.model_extra or {}:
            if not extra.startswith("x-"):
                raise ValueError(
                    f"{extra}: unknown section; allowed: version, defaults, keys, providers, "
                    "models (and x-* for YAML anchors)"
                )
        seen: dict[tuple[str, str], str] = {}
        for name, model in self.models.items():
            if model.provider not in self.providers:
                known = ", ".join(sorted(self.providers))
                raise ValueError(
                    f"models.{name}.provider: unknown provider {model.provider!r} (known: {known})"
                )
            for key in model.keys:
                if key not in self.keys:
                    known = ", ".join(sorted(self.keys))
                    raise ValueError(f"models.{name}.keys: unknown key {key!r} (known: {known})")
            for dep in model.deployments or []:
                where = (model.provider, dep)
                if where in seen:
                    raise ValueError(
                        f"models.{name}.deployments: duplicate deployment {dep!r} "
                        f"(already used by {seen[where]})"
                    )
                seen[where] = name
        return self


class Config:
    """A loaded, validated providers.yaml plus the path it came from."""

    def __init__(self, data: ProvidersFile, path: Path, settings: Settings | None = None) -> None:
        self.data = data
        self.path = path
        self.settings = settings or Settings()

    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.data.models

    def provider_of(self, model: str) -> ProviderSpec:
        return self.data.providers[self.data.models[model].provider]

    def timeouts_of(self, model: str) -> Timeouts:
        return self.provider_of(model).timeouts or self.data.defaults.timeouts

    def retry_of(self, model: str) -> RetryPolicy:
        return self.provider_of(model).retry or self.data.defaults.retry

    def settings_of(self, model: str) -> GenerationSettings:
        """The model's generation params, parameter rules and price, resolved."""
        spec = self.data.models[model]
        return generation_settings(self.data.providers[spec.provider], spec)

    def base_url_of(self, provider: str, env: Mapping[str, str] | None = None) -> str:
        spec = self.data.providers[provider]
        env = os.environ if env is None else env
        if spec.base_url_env and env.get(spec.base_url_env):
            problem = url_problem(env[spec.base_url_env])
            if problem:
                raise ConfigError(f"${spec.base_url_env} (base URL of {provider}): {problem}")
            return env[spec.base_url_env].rstrip("/")
        return spec.base_url

    def key_envs(self, models: Iterable[str] | None = None) -> dict[str, str]:
        """Key name → environment variable, for the keys the given models use."""
        names = self.models if models is None else models
        used = {key for m in names for key in self.data.models[m].keys}
        envs = {k: self.data.keys[k].env for k in sorted(used)}
        return {k: env for k, env in envs.items() if env is not None}

    def missing_keys(
        self, models: Iterable[str] | None = None, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """Environment variables the given models need that are unset or empty."""
        env = os.environ if env is None else env
        return sorted({var for var in self.key_envs(models).values() if not env.get(var)})

    def resolve_keys(
        self, models: Iterable[str] | None = None, env: Mapping[str, str] | None = None
    ) -> dict[str, SecretStr]:
        """Key name → secret, read from the environment; raises MissingKeysError if any is unset."""
        env = os.environ if env is None else env
        missing = self.missing_keys(models, env)
        if missing:
            raise MissingKeysError(missing)
        envs = self.key_envs(models)
        check_keys({f"${var}": env[var] for var in envs.values()})
        names = self.models if models is None else models
        used = {key for m in names for key in self.data.models[m].keys}
        # keys without a variable are keyless: an empty secret, no auth header
        return {name: SecretStr(env[envs[name]] if name in envs else "") for name in sorted(used)}

    def malformed_keys(
        self, models: Iterable[str] | None = None, env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Variable → one line, for each set key variable whose value cannot be a key."""
        env = os.environ if env is None else env
        found = {}
        for var in self.key_envs(models).values():
            if env.get(var):
                for line in key_lines({f"${var}": env[var]}):
                    found[var] = line
        return found


def load_config(path: str | Path | None = None, settings: Settings | None = None) -> Config:
    """Load and validate providers.yaml; raises ConfigError with a one-line-per-problem message.

    The path is, in order: the argument, ULTRA_ASYNC_PROVIDERS, ./providers.yaml.
    """
    settings = settings or Settings()
    file = Path(path) if path is not None else settings.providers
    label = file.name if file.parent == Path(".") else str(file)
    raw = parse_yaml(label, read_text(file, label))
    problems = shape_problems(raw)
    if problems:
        raise ConfigError("\n".join(f"{label}: {one_line(p)}" for p in problems))
    try:
        data = ProvidersFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(label, exc)) from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply") from None
    return Config(data, file, settings)

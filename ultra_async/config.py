"""Configuration: load and validate providers.yaml, resolve keys from the environment."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
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


class Settings(BaseSettings):
    """Process-level settings, overridable by ULTRA_ASYNC_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="ULTRA_ASYNC_", extra="ignore")

    providers: Path = Path("providers.yaml")
    out: Path = Path("results")
    log_level: str = "info"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Socket timeouts of one request, in seconds."""

    connect_s: float = Field(10.0, gt=0)
    #: a non-streaming completion sends nothing until the model is done, so by default the
    #: read timeout is the total: a reasoning model may think for minutes
    read_s: float = Field(300.0, gt=0)
    total_s: float = Field(300.0, gt=0)


class RetryPolicy(_Strict):
    """How often and how long one request is retried, and how long one test may take."""

    max_attempts: int = Field(6, ge=1, le=100)
    base_delay_s: float = Field(1.0, gt=0)
    max_delay_s: float = Field(60.0, gt=0)
    test_deadline_s: float = Field(900.0, gt=0)


class Defaults(_Strict):
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    #: requests a token bucket may send back to back; small so no server-side burst is exceeded
    burst: int = Field(2, ge=1)
    #: seconds in-flight tests may finish after Ctrl-C before they are cancelled
    grace_s: float = Field(10.0, ge=0)


class KeySpec(_Strict, KeyExtras):
    """A named API key: where it comes from and the limits shared by everything that uses it.

    Without `env` the key is empty and no auth header is sent (a local, keyless server).
    """

    env: str | None = None
    qps: float | None = Field(None, gt=0)
    max_in_flight: int | None = Field(None, ge=1)
    burst: int | None = Field(None, ge=1)

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
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _azure_needs_version(self) -> ProviderSpec:
        if self.kind == "azure" and not self.api_version:
            raise ValueError('api_version is required for kind azure (e.g. "2024-12-01-preview")')
        return self


def _parse_range(value: Any, *, integer: bool) -> Range:
    """Accept `10` or `{start: 50, max: 100, min: 1}`."""
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
    if start <= 0 or maximum <= 0 or (minimum is not None and minimum <= 0):
        raise ValueError("must be > 0")
    if maximum < start:
        raise ValueError(f"max ({maximum:g}) must be >= start ({start:g})")
    if minimum is None:
        minimum = min(start, 1.0)
    if minimum > start:
        raise ValueError(f"min ({minimum:g}) must be <= start ({start:g})")
    if integer and any(x != int(x) for x in (start, maximum, minimum)):
        raise ValueError("must be whole numbers")
    return Range(start=start, min=minimum, max=maximum)


class ModelSpec(_Strict, ModelExtras):
    """One model: its provider, how its capacity is split into shards, and per-shard limits."""

    provider: str
    strategy: Literal["keys", "instances", "single"]
    keys: list[str] = Field(min_length=1)
    deployments: list[str] | None = None
    instance_prefix: str | None = None
    #: the model name sent in requests, when it differs from the entry's name
    api_model: str | None = None
    workers: Range
    qps: Range = UNLIMITED
    burst: int | None = Field(None, ge=1)

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> Range:
        return value if isinstance(value, Range) else _parse_range(value, integer=True)

    @field_validator("qps", mode="before")
    @classmethod
    def _qps(cls, value: Any) -> Range:
        return value if isinstance(value, Range) else _parse_range(value, integer=False)

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
        names = self.models if models is None else models
        used = {key for m in names for key in self.data.models[m].keys}
        # keys without a variable are keyless: an empty secret, no auth header
        return {name: SecretStr(env[envs[name]] if name in envs else "") for name in sorted(used)}


def load_config(path: str | Path | None = None, settings: Settings | None = None) -> Config:
    """Load and validate providers.yaml; raises ConfigError with a one-line-per-problem message.

    The path is, in order: the argument, ULTRA_ASYNC_PROVIDERS, ./providers.yaml.
    """
    settings = settings or Settings()
    file = Path(path) if path is not None else settings.providers
    label = file.name if file.parent == Path(".") else str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: file not found; pass --providers PATH or set ULTRA_ASYNC_PROVIDERS"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{label}: {where}invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping with keys, providers and models sections")
    try:
        data = ProvidersFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(label, exc)) from None
    return Config(data, file, settings)


def format_validation_error(label: str, exc: ValidationError) -> str:
    """One line per problem: `file: dotted.field.path: reason`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        msg = str(err["msg"])
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/providers.md)"
        elif err["type"] == "greater_than":
            msg = f"must be > {err.get('ctx', {}).get('gt')}"
        elif err["type"] == "greater_than_equal":
            msg = f"must be >= {err.get('ctx', {}).get('ge')}"
        msg = msg[:1].lower() + msg[1:]
        # model-level messages already start with their own field path
        lines.append(f"{label}: {loc + ': ' if loc else ''}{msg}")
    return "\n".join(lines)

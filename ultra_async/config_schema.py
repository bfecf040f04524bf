"""The pydantic models of providers.yaml: its sections, their fields and bounds, references."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._input import url_problem
from .config_bounds import (
    MAX_BURST,
    MAX_GRACE_S,
    MAX_IN_FLIGHT,
    MAX_QPS,
    MAX_ROUTES,
    MAX_TIMEOUT_S,
    MAX_WORKERS,
    MIN_QPS,
    UNLIMITED,
    parse_range,
)
from .config_extras import KeyExtras, ModelExtras, ProviderExtras, add_keyless_keys
from .types import Range

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Shapes of real API keys: such a value in providers.yaml is a leaked secret, not a variable.
_SECRET_SHAPE = re.compile(r"^(sk-|sk_|Bearer\s)|^[A-Za-z0-9]{32,}$")


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
        return parse_range(value, integer=True, upper=MAX_WORKERS)

    @field_validator("qps", mode="before")
    @classmethod
    def _qps(cls, value: Any) -> Range:
        return (
            value
            if isinstance(value, Range)
            else parse_range(value, integer=False, upper=MAX_QPS, lower=MIN_QPS)
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

"""Configuration: load and validate providers.yaml, resolve keys from the environment.

The file's models are in `config_schema`, its bounds and ranges in `config_bounds`; every name
stays importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import SecretStr, ValidationError
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
)
from .config_extras import GenerationSettings, generation_settings
from .config_schema import (
    Defaults,
    KeySpec,
    ModelSpec,
    ProvidersFile,
    ProviderSpec,
    RetryPolicy,
    Timeouts,
)
from .errors import ConfigError, MissingKeysError

__all__ = [
    "MAX_BURST",
    "MAX_GRACE_S",
    "MAX_IN_FLIGHT",
    "MAX_QPS",
    "MAX_ROUTES",
    "MAX_TIMEOUT_S",
    "MAX_WORKERS",
    "MIN_QPS",
    "UNLIMITED",
    "Config",
    "Defaults",
    "KeySpec",
    "ModelSpec",
    "ProviderSpec",
    "ProvidersFile",
    "RetryPolicy",
    "Settings",
    "Timeouts",
    "load_config",
]


class Settings(BaseSettings):
    """Process-level settings, overridable by ULTRA_ASYNC_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="ULTRA_ASYNC_", extra="ignore")

    providers: Path = Path("providers.yaml")
    out: Path = Path("results")
    log_level: str = "info"


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

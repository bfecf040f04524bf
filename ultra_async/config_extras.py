"""providers.yaml fields for real providers: generation params, token and request limits, price.

Kept apart from `config.py` (which owns the file's structure) as mixins its models inherit:

- `params`: generation settings (temperature, max_tokens, top_p, seed, stop, reasoning_effort,
  any extra body field) per provider and per model, merged under the arguments of `chat(...)`;
- `param_rules` and `reasoning: true`: what a model does not accept (reasoning models take
  `max_completion_tokens` instead of `max_tokens` and no sampling settings);
- `rpm` beside `qps`, and `tpm`, per model (each shard) and per key; `qps` left out = unlimited;
- `price` per million input and output tokens;
- keyless endpoints: a key without `env`, or a model without `keys`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: the key name given to models that declare no keys (a local server that needs none)
KEYLESS = "keyless"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(BaseModel):
    """Body fields sent with every request of a model; unknown fields are passed through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    #: the engine reads one choice; more would be paid for and thrown away
    n: Literal[1] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @model_validator(mode="after")
    def _not_engine_fields(self) -> GenerationParams:
        owned = {"model", "messages", "stream"} & set(self.model_extra or {})
        if owned:
            raise ValueError(
                f"{', '.join(sorted(owned))}: set by the engine, not in params "
                "(the model comes from the entry; streaming is not supported)"
            )
        return self

    def as_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ParamRules(_Strict):
    """What a provider or model does not accept: fields to rename and fields to drop."""

    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)


#: what `reasoning: true` means (OpenAI o-series, gpt-5, DeepSeek-R1 on Azure)
REASONING_RULES = ParamRules(
    rename={"max_tokens": "max_completion_tokens"},
    drop=["temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs",
          "top_logprobs", "logit_bias"],
)  # fmt: skip


class Price(_Strict):
    """Price per million tokens, in any one currency used throughout the file."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def _per_minute_to_qps(data: Any, where: str) -> Any:
    """Turn `rpm` into the equivalent `qps` (a number or a {start, max, min} range)."""
    if not isinstance(data, dict) or "rpm" not in data:
        return data
    if "qps" in data:
        raise ValueError(f"{where}give qps or rpm, not both")
    data = dict(data)
    rpm = data.pop("rpm")
    if isinstance(rpm, bool):
        data["qps"] = rpm  # rejected by the qps check with its usual message
    elif isinstance(rpm, int | float):
        data["qps"] = rpm / 60
    elif isinstance(rpm, Mapping):
        data["qps"] = {
            k: v / 60 if isinstance(v, int | float) and not isinstance(v, bool) else v
            for k, v in rpm.items()
        }
    else:
        data["qps"] = rpm
    return data


class KeyExtras(BaseModel):
    """Token limit of a key, shared by every shard (of any model) that uses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tpm: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _rpm(cls, data: Any) -> Any:
        return _per_minute_to_qps(data, "")


class ProviderExtras(BaseModel):
    """Generation settings and rules every model of a provider inherits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: GenerationParams | None = None
    param_rules: ParamRules | None = None
    reasoning: bool = False


class ModelExtras(BaseModel):
    """Per-model generation settings, token limit and price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: GenerationParams | None = None
    param_rules: ParamRules | None = None
    #: None: as the provider says
    reasoning: bool | None = None
    #: tokens per minute per shard
    tpm: int | None = Field(None, ge=1)
    price: Price | None = None

    @model_validator(mode="before")
    @classmethod
    def _rpm(cls, data: Any) -> Any:
        return _per_minute_to_qps(data, "")

    @model_validator(mode="after")
    def _reasoning_params(self) -> ModelExtras:
        if self.reasoning and self.params is not None:
            refused = sorted(set(self.params.as_body()) & set(REASONING_RULES.drop))
            if refused:
                raise ValueError(
                    f"params: {', '.join(refused)}: not accepted by reasoning models "
                    "(reasoning: true drops it); remove it"
                )
        return self


def add_keyless_keys(data: Any) -> Any:
    """Models without `keys` use the implicit key `keyless` (no environment variable)."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return data
    keyless = [
        name for name, m in data["models"].items() if isinstance(m, dict) and "keys" not in m
    ]
    if not keyless:
        return data
    data = dict(data)
    data["models"] = {
        name: {**m, "keys": [KEYLESS]} if name in keyless else m
        for name, m in data["models"].items()
    }
    keys = dict(data.get("keys") or {})
    keys.setdefault(KEYLESS, {})
    data["keys"] = keys
    return data


class GenerationSettings:
    """A model's params and rules, resolved once; `body(call_params)` builds the request fields."""

    __slots__ = ("base", "drop", "price", "rename")

    def __init__(
        self,
        base: Mapping[str, Any],
        rules: list[ParamRules],
        price: Price | None = None,
    ) -> None:
        self.base = dict(base)
        self.rename: dict[str, str] = {}
        self.drop: set[str] = set()
        for rule in rules:
            self.rename.update(rule.rename)
            self.drop.update(rule.drop)
        self.price = price

    @property
    def plain(self) -> bool:
        """True when the call's own arguments go out unchanged."""
        return not (self.base or self.rename or self.drop)

    def body(self, call: Mapping[str, Any]) -> dict[str, Any]:
        """Configured params under the call's arguments, then renamed and dropped by the rules."""
        out = {**self.base, **call}
        for old, new in self.rename.items():
            if old in out:
                value = out.pop(old)
                out.setdefault(new, value)
        for name in self.drop:
            out.pop(name, None)
        return out


def generation_settings(provider: ProviderExtras, model: ModelExtras) -> GenerationSettings:
    """Provider params under model params; provider rules, model rules and reasoning rules."""
    base: dict[str, Any] = {}
    if provider.params is not None:
        base.update(provider.params.as_body())
    if model.params is not None:
        base.update(model.params.as_body())
    rules = [r for r in (provider.param_rules, model.param_rules) if r is not None]
    reasoning = provider.reasoning if model.reasoning is None else model.reasoning
    if reasoning:
        rules.append(REASONING_RULES)
    return GenerationSettings(base, rules, model.price)


def is_unlimited(qps: float) -> bool:
    return math.isinf(qps)

"""providers.yaml fields for real providers: params, reasoning rules, tpm/rpm, price, keyless."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from ultra_async.config import load_config
from ultra_async.config_extras import KEYLESS
from ultra_async.errors import ConfigError

GOOD = """
keys:
  k: {env: T_K, rpm: 600, tpm: 90000}
  local: {}
providers:
  p:
    kind: openai
    base_url: "https://api.example.com/v1"
    params: {temperature: 0.2, seed: 7}
  r:
    kind: openai
    base_url: "https://api.example.com/v1"
    reasoning: true
  vllm: {kind: openai, base_url: "http://127.0.0.1:8000/v1"}
models:
  chat-model:
    provider: p
    strategy: single
    keys: [k]
    workers: 4
    rpm: 1200
    tpm: 30000
    params: {max_tokens: 256, top_p: 0.9, stop: ["END"], response_format: {type: json_object}}
    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}
  thinker:
    provider: r
    strategy: single
    keys: [k]
    workers: 2
    qps: 1
    params: {max_tokens: 4000, reasoning_effort: low}
  local-model: {provider: vllm, strategy: single, workers: 8}
  local-key: {provider: vllm, strategy: single, keys: [local], workers: 8}
"""


def test_a_file_with_params_tpm_rpm_and_price_validates(write_yaml: Callable[[str], Path]) -> None:
    config = load_config(write_yaml(GOOD))
    model = config.models["chat-model"]
    assert model.qps.start == pytest.approx(20.0) and not model.qps.adaptive  # rpm 1200
    assert model.tpm == 30000
    key = config.data.keys["k"]
    assert key.qps == pytest.approx(10.0) and key.tpm == 90000
    settings = config.settings_of("chat-model")
    body = settings.body({"temperature": 0.0})
    # provider params under model params under the call's own arguments
    assert body == {
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 256,
        "top_p": 0.9,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
    }
    assert settings.price is not None
    assert settings.price.cost(1_000_000, 2_000_000) == pytest.approx(0.15 + 1.2)


def test_reasoning_models_get_max_completion_tokens_and_no_sampling_settings(
    write_yaml: Callable[[str], Path],
) -> None:
    settings = load_config(write_yaml(GOOD)).settings_of("thinker")
    body = settings.body({"temperature": 0.7, "top_p": 1.0, "max_tokens": 100})
    assert body == {"max_completion_tokens": 100, "reasoning_effort": "low"}
    assert settings.body({}) == {"max_completion_tokens": 4000, "reasoning_effort": "low"}


def test_a_model_without_qps_is_unlimited_and_without_keys_is_keyless(
    write_yaml: Callable[[str], Path],
) -> None:
    config = load_config(write_yaml(GOOD))
    assert math.isinf(config.models["local-model"].qps.start)
    assert config.models["local-model"].keys == [KEYLESS]
    keys = config.resolve_keys(["local-model", "local-key"], env={})
    assert keys[KEYLESS].get_secret_value() == "" and keys["local"].get_secret_value() == ""
    assert config.missing_keys(["local-model", "local-key"], env={}) == []
    assert config.missing_keys(["chat-model"], env={}) == ["T_K"]


def test_a_plain_number_is_fixed_and_a_range_adapts(write_yaml: Callable[[str], Path]) -> None:
    config = load_config(write_yaml(GOOD))
    assert not config.models["thinker"].workers.adaptive
    assert not config.models["thinker"].qps.adaptive


BAD = """
keys:
  k: {env: T_K, qps: 5, rpm: 300}
providers:
  p: {kind: openai, base_url: "https://api.example.com/v1", params: {stream: true}}
models:
  a:
    provider: p
    strategy: single
    keys: [k]
    workers: 1
    params: {temperature: 3, max_tokens: 0, reasoning_effort: extreme}
    price: {input_per_mtok: -1, output_per_mtok: 1}
    tpm: 0
  b: {provider: p, strategy: single, keys: [k], workers: 1, qps: 2, rpm: 120}
  c: {provider: p, strategy: single, keys: [k], workers: 1, reasoning: true, params: {top_p: 0.5}}
"""


def test_a_bad_file_gets_one_line_per_problem(write_yaml: Callable[[str], Path]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(BAD))
    lines = str(info.value).splitlines()
    expected = [
        "keys.k: give qps or rpm, not both",
        "providers.p.params: stream: set by the engine",
        "models.a.params.temperature: must be at most 2",
        "models.a.params.max_tokens: must be >= 1",
        "models.a.params.reasoning_effort: input should be 'minimal', 'low', 'medium' or 'high'",
        "models.a.price.input_per_mtok: must be >= 0",
        "models.a.tpm: must be >= 1",
        "models.b: give qps or rpm, not both",
        "models.c: params: top_p: not accepted by reasoning models",
    ]
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)
    assert len(lines) == len(expected), lines


def test_the_shard_table_says_unlimited_for_a_model_without_qps(
    write_yaml: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from ultra_async.cli.main import main

    path = write_yaml(GOOD)
    assert main(["plan", "--providers", str(path), "--models", "local-model"]) == 0
    assert "unlimited" in capsys.readouterr().out

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ultra_async.config import Config, load_config
from ultra_async.errors import ConfigError, MissingKeysError

VALID = """
keys:
  k0: {env: TEST_KEY_0}
  k1: {env: TEST_KEY_1}
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
  az: {kind: azure, base_url: "http://127.0.0.1:9", api_version: "2024-12-01-preview"}
models:
  m-keys: {provider: p, strategy: keys, keys: [k0, k1], workers: 2, qps: 10}
  m-inst:
    provider: az
    strategy: instances
    keys: [k0]
    deployments: [m-inst, m-inst-2]
    workers: {start: 5, max: 10}
    qps: {start: 20, max: 40}
"""


def _error(write_yaml: Callable[[str], Path], text: str) -> str:
    path = write_yaml(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def test_repo_providers_yaml_is_valid(repo_config: Config) -> None:
    assert len(repo_config.models) == 13
    assert repo_config.data.keys["ideallab-closed"].qps == 10
    ds = repo_config.models["DeepSeek-V3-0324"]
    assert (ds.workers.start, ds.workers.max, ds.qps.start, ds.qps.max) == (50, 100, 100, 200)


def test_valid_small_file(write_yaml: Callable[[str], Path]) -> None:
    config = load_config(write_yaml(VALID))
    assert config.models["m-keys"].workers.start == 2
    assert not config.models["m-keys"].workers.adaptive or config.models["m-keys"].workers.min < 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # negative QPS: names file, field path and reason on one line
        (("qps: 10}", "qps: -1}"), "models.m-keys.qps: must be > 0"),
        # wrong type
        (
            ("workers: 2,", "workers: two,"),
            "models.m-keys.workers: must be a number or {start, max}",
        ),
        # missing field
        (("strategy: keys, ", ""), "models.m-keys.strategy: required field is missing"),
        # unknown provider
        (("provider: p,", "provider: nope,"), "models.m-keys.provider: unknown provider 'nope'"),
        # unknown key
        (("keys: [k0, k1]", "keys: [k0, k9]"), "models.m-keys.keys: unknown key 'k9'"),
        # duplicate deployment
        (("[m-inst, m-inst-2]", "[m-inst, m-inst]"), "duplicate deployment 'm-inst'"),
        # a literal secret instead of a variable name
        (("env: TEST_KEY_0", "env: sk-abcdef123"), "keys.k0.env: looks like an API key"),
        # unknown field
        (("workers: 2,", "wrokers: 2, workers: 2,"), "models.m-keys.wrokers: unknown field"),
        # range with max below start
        (("max: 10}", "max: 3}"), "models.m-inst.workers: max (3) must be >= start (5)"),
        # azure without api_version
        ((', api_version: "2024-12-01-preview"', ""), "providers.az: api_version is required"),
        # bad kind
        (("kind: openai", "kind: grpc"), "providers.p.kind: input should be 'openai' or 'azure'"),
    ],
)
def test_config_errors_name_field_and_reason(
    write_yaml: Callable[[str], Path], change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in VALID
    message = _error(write_yaml, VALID.replace(old, new, 1))
    assert expected in message
    assert "\n" not in message  # one problem, one line


def test_invalid_yaml_names_line(write_yaml: Callable[[str], Path]) -> None:
    message = _error(write_yaml, "keys: [\n  a: b\n")
    assert "line" in message and "invalid YAML" in message


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found; pass --providers PATH"):
        load_config(tmp_path / "nope.yaml")


def test_path_from_environment(
    write_yaml: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(VALID)
    monkeypatch.setenv("ULTRA_ASYNC_PROVIDERS", str(path))
    assert load_config().path == path


def test_missing_keys_named_by_variable(write_yaml: Callable[[str], Path]) -> None:
    config = load_config(write_yaml(VALID))
    assert config.missing_keys(env={"TEST_KEY_0": "secret"}) == ["TEST_KEY_1"]
    with pytest.raises(MissingKeysError) as info:
        config.resolve_keys(env={})
    assert "TEST_KEY_0, TEST_KEY_1" in str(info.value)
    assert "--simulate" in str(info.value)
    keys = config.resolve_keys(env={"TEST_KEY_0": "s0", "TEST_KEY_1": "s1"})
    assert keys["k1"].get_secret_value() == "s1"
    assert "s1" not in repr(keys)


def test_base_url_env_override(write_yaml: Callable[[str], Path]) -> None:
    text = VALID.replace(
        'base_url: "http://127.0.0.1:9/v1"}',
        'base_url: "http://127.0.0.1:9/v1", base_url_env: P_URL}',
    )
    config = load_config(write_yaml(text))
    assert config.base_url_of("p", env={}) == "http://127.0.0.1:9/v1"
    assert (
        config.base_url_of("p", env={"P_URL": "http://127.0.0.1:7/v1/"}) == "http://127.0.0.1:7/v1"
    )

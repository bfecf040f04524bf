from __future__ import annotations

import pytest

from ultra_async.config import Config
from ultra_async.naming import ModelNames, normalize_model_name
from ultra_async.planner import model_names


@pytest.mark.parametrize(
    ("name", "hint", "expected"),
    [
        ("DeepSeek-V3-0324-2", None, "DeepSeek-V3-0324"),
        ("DeepSeek-V3-0324-3", None, "DeepSeek-V3-0324"),
        ("DeepSeek-V3-0324", None, "DeepSeek-V3-0324"),
        ("Llama-3.3-70B-Instruct-3", None, "Llama-3.3-70B-Instruct"),
        ("deepseek-r1-0528-2", None, "DeepSeek-R1-0528"),
        ("LLAMA-3.3-70B-INSTRUCT", None, "Llama-3.3-70B-Instruct"),
        ("Qwen2.5-72B-Instruct", None, "qwen2.5-72b-instruct"),
        ("qwen-key1", "qwen2.5-7b-instruct", "qwen2.5-7b-instruct"),
        ("qwen-key1", None, "qwen-key1"),  # ambiguous without the shard's model
        ("grok-3", None, "grok-3"),
        ("my-model-2", None, "my-model-2"),
        ("gpt-4o-mini", None, "gpt-4o-mini"),
    ],
)
def test_builtin_rules(name: str, hint: str | None, expected: str) -> None:
    assert normalize_model_name(name, hint) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DeepSeek-V3-0324-2", "DeepSeek-V3-0324"),
        ("Llama-3.3-70B-Instruct-3", "Llama-3.3-70B-Instruct"),
        ("grok-3", "grok-3"),
        ("kimi-k2", "kimi-k2"),
    ],
)
def test_config_mapping(repo_config: Config, name: str, expected: str) -> None:
    assert model_names(repo_config).normalize(name) == expected


def test_explicit_mapping_wins_over_rules() -> None:
    names = ModelNames(["base"], instances={"fancy-east": "base", "base-2": "other"})
    assert names.normalize("fancy-east") == "base"
    assert names.normalize("base-2") == "other"


def test_unique_virtual_prefix_resolves() -> None:
    names = ModelNames(["solo-model"], virtual_prefixes={"solo": ["solo-model"]})
    assert names.normalize("solo-key2") == "solo-model"

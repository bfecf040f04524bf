from __future__ import annotations

from collections import Counter

import pytest

from ultra_async.config import Config
from ultra_async.errors import PlanError
from ultra_async.planner import build_shards, make_plan
from ultra_async.suites.workflow.dimensions import PROMPT_TYPES, TASK_TYPES
from ultra_async.suites.workflow.item import WorkflowItem as WorkItem
from ultra_async.suites.workflow.suite import parse_prompt_types, workflow_matrix


def test_keys_strategy_routes_each_shard_to_its_own_key(repo_config: Config) -> None:
    shards = build_shards(repo_config, "qwen2.5-72b-instruct")
    assert [s.name for s in shards] == ["qwen-key0", "qwen-key1", "qwen-key2"]
    # the older tool sent all three to one key: the routes must really differ
    assert [s.route.key_index for s in shards] == [0, 1, 2]
    assert len({s.route.key_env for s in shards}) == 3
    assert len({s.route for s in shards}) == 3
    assert all(s.route.kind == "openai" and s.api_model == "qwen2.5-72b-instruct" for s in shards)
    assert shards[0].route.url.endswith("/chat/completions")
    assert shards[0].siblings == ("qwen-key1", "qwen-key2")
    assert (shards[0].workers.max, shards[0].qps.max) == (2, 10)


def test_instances_strategy_one_shard_per_deployment(repo_config: Config) -> None:
    shards = build_shards(repo_config, "DeepSeek-V3-0324")
    assert [s.name for s in shards] == [
        "DeepSeek-V3-0324",
        "DeepSeek-V3-0324-2",
        "DeepSeek-V3-0324-3",
    ]
    assert [s.route.deployment for s in shards] == [s.name for s in shards]
    assert (
        "/openai/deployments/DeepSeek-V3-0324-2/chat/completions?api-version="
        in shards[1].route.url
    )
    assert (shards[0].workers.start, shards[0].workers.max) == (50, 100)
    assert (shards[0].qps.start, shards[0].qps.max) == (100, 200)


@pytest.mark.parametrize(
    ("model", "name", "kind", "workers", "qps"),
    [
        ("o3-0416-global", "o3-0416-global", "openai", 5, 10),
        ("gpt-4o-mini", "gpt-4o-mini", "azure", 100, 200),
    ],
)
def test_single_strategy(
    repo_config: Config, model: str, name: str, kind: str, workers: int, qps: int
) -> None:
    (shard,) = build_shards(repo_config, model)
    assert shard.name == name and shard.route.kind == kind
    assert (shard.workers.max, shard.qps.max) == (workers, qps)
    assert shard.siblings == ()


def test_closed_models_share_one_key(repo_config: Config) -> None:
    keys = {
        build_shards(repo_config, m)[0].route.key_name
        for m in ("o3-0416-global", "kimi-k2", "gemini-2.5-flash-06-17")
    }
    assert keys == {"ideallab-closed"}


def test_default_matrix_shard_counts(repo_config: Config) -> None:
    matrix = workflow_matrix(repo_config, models="all", prompt_types="optimal", instances=20)
    plan = make_plan(repo_config, matrix)
    per_model = Counter(sp.shard.model for sp in plan.shards)
    for model in repo_config.models:
        expected = 3 if model.startswith(("qwen", "DeepSeek", "Llama")) else 1
        assert per_model[model] == expected, model
    assert plan.total == 13 * 5 * 20


def test_even_split(repo_config: Config) -> None:
    matrix = workflow_matrix(
        repo_config, models="qwen2.5-7b-instruct", prompt_types="all", instances=7
    )
    plan = make_plan(repo_config, matrix)
    sizes = [len(sp.items) for sp in plan.shards]
    assert sum(sizes) == 3 * 5 * 7
    assert max(sizes) - min(sizes) <= 1
    # every shard gets a mix of cells, not one cell each
    assert all(len({i.labels["prompt_type"] for i in sp.items}) == 3 for sp in plan.shards)


def test_ids_are_stable_and_unique(repo_config: Config) -> None:
    matrix = workflow_matrix(repo_config, models="all", prompt_types="all_with_flawed", instances=2)
    ids = [item.id for item in matrix.items()]
    assert len(ids) == len(set(ids)) == matrix.size
    item = WorkItem("gpt-4o-mini", "optimal", 0.8, "easy", "simple_task", 3)
    assert item.id == "gpt-4o-mini/optimal/0.8/easy/simple_task/3"
    # same id → same seed in every process (not Python's randomized hash)
    assert item.seed == WorkItem("gpt-4o-mini", "optimal", 0.8, "easy", "simple_task", 3).seed
    assert item.seed == 157719817046826363
    assert item.seed_with(1) != item.seed_with(2)


def test_done_items_are_subtracted(repo_config: Config) -> None:
    matrix = workflow_matrix(repo_config, models="gpt-4o-mini", instances=3)
    done = {item.id for item in matrix.items() if item.instance < 2}
    plan = make_plan(repo_config, matrix, done)
    assert plan.skipped == len(done)
    assert {i.instance for sp in plan.shards for i in sp.items} == {2}
    # topping up: a larger N adds only the new instances
    bigger = workflow_matrix(repo_config, models="gpt-4o-mini", instances=5)
    done_all = {item.id for item in matrix.items()}
    assert {
        i.instance for sp in make_plan(repo_config, bigger, done_all).shards for i in sp.items
    } == {3, 4}


def test_prompt_type_groups() -> None:
    assert parse_prompt_types("all") == ("baseline", "cot", "optimal")
    assert parse_prompt_types("all_with_flawed") == PROMPT_TYPES
    assert parse_prompt_types("optimal,cot,optimal") == ("optimal", "cot")
    with pytest.raises(PlanError, match="unknown prompt type 'best'"):
        parse_prompt_types("best")


def test_matrix_errors(repo_config: Config) -> None:
    with pytest.raises(PlanError, match="unknown model 'gpt-9'"):
        workflow_matrix(repo_config, models="gpt-9")
    with pytest.raises(PlanError, match="must be in"):
        workflow_matrix(repo_config, models="all", rates="1.5")
    with pytest.raises(PlanError, match="instances must be a whole number >= 1"):
        workflow_matrix(repo_config, models="all", instances=0)
    matrix = workflow_matrix(repo_config, models="all", task_types="all")
    assert [c.labels["task_type"] for c in matrix.cases] == list(TASK_TYPES)

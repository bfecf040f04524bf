"""The shipped tool registry, task library and generator, and the choice of a task per item."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from ultra_async.errors import PlanError
from ultra_async.suites.workflow import generate
from ultra_async.suites.workflow.dimensions import DIFFICULTIES, TASK_TYPES
from ultra_async.suites.workflow.item import WorkflowItem as WorkItem
from ultra_async.suites.workflow.search import default_index
from ultra_async.suites.workflow.tasks import find_task, load_tasks, select_task, tasks_for
from ultra_async.suites.workflow.tools import load_tools


def test_registry_has_tens_of_tools_in_a_few_categories() -> None:
    tools = load_tools()
    assert 30 <= len(tools) <= 45
    categories = Counter(t.category for t in tools.values())
    assert len(categories) >= 5
    assert min(categories.values()) >= 4


def test_every_tool_is_well_formed() -> None:
    tools = load_tools()
    for tool in tools.values():
        assert tool.description and tool.output
        assert tool.errors, tool.name
        assert set(tool.dependencies) <= set(tools), tool.name
        assert any(p.required for p in tool.parameters), tool.name
        for param in tool.parameters:
            assert param.accepts(param.example), (tool.name, param.name)
        # the correct call of every tool passes its own parameter check
        assert tool.check_params(tool.example_params()) is None


def test_every_cell_has_several_tasks_and_harder_means_longer() -> None:
    for task_type in TASK_TYPES:
        lengths = []
        for difficulty in DIFFICULTIES:
            tasks = tasks_for(task_type, difficulty)
            assert len(tasks) >= 3
            lengths.append(max(len(t.required_tools) for t in tasks))
        assert lengths == sorted(lengths)
        assert lengths[-1] > lengths[0]


def test_required_sequences_respect_tool_dependencies() -> None:
    tools = load_tools()
    for task in load_tasks():
        assert len(task.required_tools) >= 2
        assert len(set(task.required_tools)) == len(task.required_tools)
        for i, name in enumerate(task.required_tools):
            for dep in tools[name].dependencies:
                assert dep in task.required_tools[:i], (task.id, name, dep)


def test_descriptions_are_unique_and_found_again() -> None:
    tasks = load_tasks()
    assert len({t.description for t in tasks}) == len(tasks)
    for task in tasks:
        assert find_task(f"  {task.description.upper()} ") == task
        assert len(generate.subgoals(task.description)) == len(task.required_tools)


def test_shipped_tasks_equal_the_generator_output() -> None:
    from importlib import resources

    shipped = resources.files("ultra_async.suites.workflow").joinpath("data/tasks.json").read_text()
    assert shipped == generate.render()


def test_task_choice_is_deterministic_and_paired_across_models_and_prompts() -> None:
    item = WorkItem("gpt-4o-mini", "optimal", 0.8, "hard", "data_pipeline", 3)
    assert select_task(item, 7) == select_task(item, 7)
    other = dataclasses.replace(
        item, model="kimi-k2", prompt_type="flawed_missing_step", tool_success_rate=0.6
    )
    assert select_task(other, 7) == select_task(item, 7)


def test_instances_cover_every_task_of_a_cell() -> None:
    tasks = tasks_for("api_integration", "medium")
    chosen = {
        select_task(WorkItem("m", "cot", 0.8, "medium", "api_integration", i), 1).id
        for i in range(len(tasks))
    }
    assert chosen == {t.id for t in tasks}


def test_unknown_dimensions_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="task type"):
        tasks_for("nope", "easy")
    with pytest.raises(PlanError, match="difficulty"):
        tasks_for("simple_task", "impossible")


def test_search_ranks_the_tool_a_subgoal_describes_near_the_top() -> None:
    recipes = generate.load_recipes()
    index = default_index()
    ranks = []
    for name, phrase in recipes["phrases"].items():
        hits = [t.name for t in index.search(phrase.format(s="payroll"))]
        ranks.append(hits.index(name) + 1 if name in hits else 99)
    assert sum(r == 1 for r in ranks) >= 0.9 * len(ranks)
    assert max(ranks) <= 3


def test_search_without_overlap_finds_nothing() -> None:
    assert default_index().search("zebra quantum") == []
    assert [t.name for t in default_index().search("file_reader", limit=1)] == ["file_reader"]

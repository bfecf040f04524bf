"""The task library (shipped as JSON) and the deterministic choice of a task for a work item."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ...errors import PlanError
from .dimensions import DIFFICULTIES, TASK_TYPES
from .item import WorkflowItem
from .tools import load_tools


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a plan: a tool and the parameters to call it with."""

    tool: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Task:
    """A benchmark task: what to achieve and the tool sequence that achieves it."""

    id: str
    task_type: str
    difficulty: str
    description: str
    required_tools: tuple[str, ...]

    def steps(self) -> list[Step]:
        """The correct plan: every required tool with its example parameters."""
        tools = load_tools()
        return [Step(name, tools[name].example_params()) for name in self.required_tools]


@cache
def load_tasks() -> tuple[Task, ...]:
    """The shipped task library (loaded once)."""
    text = (
        resources.files("ultra_async.suites.workflow")
        .joinpath("data/tasks.json")
        .read_text("utf-8")
    )
    return tuple(
        Task(
            id=raw["id"],
            task_type=raw["task_type"],
            difficulty=raw["difficulty"],
            description=raw["description"],
            required_tools=tuple(raw["required_tools"]),
        )
        for raw in json.loads(text)["tasks"]
    )


@cache
def _by_cell() -> dict[tuple[str, str], tuple[Task, ...]]:
    cells: dict[tuple[str, str], list[Task]] = {}
    for task in load_tasks():
        cells.setdefault((task.task_type, task.difficulty), []).append(task)
    return {key: tuple(tasks) for key, tasks in cells.items()}


def tasks_for(task_type: str, difficulty: str) -> tuple[Task, ...]:
    """The tasks of one (task type, difficulty) pair."""
    if task_type not in TASK_TYPES:
        raise PlanError(f"unknown task type {task_type!r}: choose from {', '.join(TASK_TYPES)}")
    if difficulty not in DIFFICULTIES:
        raise PlanError(f"unknown difficulty {difficulty!r}: choose from {', '.join(DIFFICULTIES)}")
    return _by_cell()[(task_type, difficulty)]


def task_seed(item: WorkflowItem, run_seed: int) -> int:
    """The seed that places a cell's tasks: the item's seed without model, prompt, rate, instance.

    Leaving those out pairs the design: instance i of a (difficulty, task type) cell gets the
    same task for every model, prompt type and tool success rate, so differences between them
    are not differences between tasks.
    """
    neutral = dataclasses.replace(item, model="", prompt_type="", tool_success_rate=0.0, instance=0)
    return neutral.seed_with(run_seed)


def select_task(item: WorkflowItem, run_seed: int = 0) -> Task:
    """The task a work item runs: the cell's tasks in turn, from a seeded starting point.

    Taking them in turn (rather than drawing each) covers every task of the cell evenly once
    there are at least as many instances as tasks.
    """
    tasks = tasks_for(item.task_type, item.difficulty)
    return tasks[(task_seed(item, run_seed) + item.instance) % len(tasks)]


_SPACE = re.compile(r"\s+")


@cache
def _by_description() -> dict[str, Task]:
    return {_SPACE.sub(" ", t.description.strip().lower()): t for t in load_tasks()}


def find_task(description: str) -> Task | None:
    """The task whose description is `description` (whitespace and case ignored)."""
    return _by_description().get(_SPACE.sub(" ", description.strip().lower()))

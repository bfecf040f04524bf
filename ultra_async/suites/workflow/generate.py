"""Deterministic generator of the shipped task library: `data/recipes.json` → `data/tasks.json`.

Run `python -m ultra_async.suites.workflow.generate` to rewrite `tasks.json`; a test checks that the
shipped file equals this generator's output, so the two never drift apart.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .dimensions import DIFFICULTIES, TASK_TYPES
from .tools import Tool, load_tools


def load_recipes() -> dict[str, Any]:
    """The authoring data: lengths, subjects, one phrase per tool, and pipelines per task type."""
    text = (
        resources.files("ultra_async.suites.workflow")
        .joinpath("data/recipes.json")
        .read_text("utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    return data


def describe(goal: str, tools: Sequence[str], subject: str, phrases: Mapping[str, str]) -> str:
    """`Goal: step, then step, and finally step.` — one clause per required tool, in order."""
    clauses = [phrases[t].format(s=subject) for t in tools]
    body = ", then ".join(clauses[:-1])
    body = f"{body}, and finally {clauses[-1]}" if body else clauses[-1]
    return f"{goal.format(s=subject)}: {body}."


def subgoals(description: str) -> list[str]:
    """The clauses of a description written by `describe`, one per required tool."""
    body = description.split(": ", 1)[-1].rstrip(".")
    return re.split(r", then |, and finally ", body)


def shorten(
    pipeline: Sequence[str], length: int, tools: Mapping[str, Tool], rng: random.Random
) -> list[str]:
    """Drop middle tools that nothing left depends on until `length` remain (ends are kept)."""
    kept = list(pipeline)
    while len(kept) > length:
        needed = {dep for name in kept for dep in tools[name].dependencies}
        middle = [name for name in kept[1:-1] if name not in needed]
        candidates = middle or [name for name in kept[1:] if name not in needed]
        kept.remove(rng.choice(candidates))
    return kept


def generate(recipes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole task library as a JSON-able dict; the same on every machine and run."""
    data = load_recipes() if recipes is None else recipes
    tools = load_tools()
    tasks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for task_type in TASK_TYPES:
        pipelines = data["recipes"][task_type]
        for d_index, difficulty in enumerate(DIFFICULTIES):
            # string seeds hash with sha512: stable across processes and PYTHONHASHSEED
            rng = random.Random(f"tasks/{task_type}/{difficulty}")
            length = data["lengths"][task_type][d_index]
            for i in range(data["tasks_per_cell"]):
                recipe = pipelines[(i + d_index) % len(pipelines)]
                required = shorten(recipe["tools"], length, tools, rng)
                subjects = list(data["subjects"])
                rng.shuffle(subjects)
                description = next(
                    text
                    for s in subjects
                    if (text := describe(recipe["goal"], required, s, data["phrases"])) not in seen
                )
                seen.add(description)
                tasks.append(
                    {
                        "id": f"{task_type}-{difficulty}-{i + 1:02d}",
                        "task_type": task_type,
                        "difficulty": difficulty,
                        "description": description,
                        "required_tools": required,
                    }
                )
    return {"version": 1, "tasks": tasks}


def render() -> str:
    """The exact text of `data/tasks.json`."""
    return json.dumps(generate(), indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the task library next to this module (or to the path given)."""
    args = list(sys.argv[1:] if argv is None else argv)
    target = Path(args[0]) if args else Path(__file__).parent / "data" / "tasks.json"
    text = render()
    target.write_text(text, encoding="utf-8")
    print(f"wrote {len(json.loads(text)['tasks'])} tasks to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

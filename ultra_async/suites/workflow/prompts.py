"""The prompts of each prompt type; real providers and the simulator get exactly these."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import PlanError
from .dimensions import FLAWED_PROMPT_TYPES, PROMPT_TYPES
from .flaws import inject_flaw
from .tasks import Step, Task
from .tools import load_tools

MAX_TURNS = 10

SYSTEM_PROMPT = """\
You are an assistant that completes tasks by using tools. You act only through these tags:
  <tool_search>keywords</tool_search>  find the tools whose description matches the keywords
  <tool_info>tool_name</tool_info>  show a tool's parameters, dependencies and error codes
  <tool_call>tool_name {{"parameter": "value"}}</tool_call>  run a tool (the JSON is optional)
You may use several tags in one reply; they run in order and their results come back in the next \
message. Some tools need other tools to have run successfully first, and any tool can fail; you \
may retry a failed call. When the task is complete, reply with TASK_COMPLETED. You have at most \
{max_turns} replies."""

#: section headers the simulated model also uses to recognise the prompt type
TASK_HEADER = "Task: "
PLAN_HEADER = "Recommended plan:"
TOOLS_HEADER = "Available tools:"
#: separates a plan step's call from its purpose
STEP_SEPARATOR = " — "

_BASELINE = """\
The tools you need are not listed here. Use <tool_search> to find them, then call them in an \
order that accomplishes the task."""

_COT = """\
Think step by step before acting: break the task into sub-goals, pick the tool for each \
sub-goal, put them in an order where every tool's inputs already exist, and then call the tools."""

_PLAN = "Execute this plan with <tool_call> tags, then reply TASK_COMPLETED."


@dataclass(frozen=True, slots=True)
class Prompt:
    """The opening messages of a test, and the plan shown in them (None when none is shown)."""

    messages: tuple[dict[str, Any], ...]
    plan: tuple[Step, ...] | None
    flaw: str | None = None


def format_call(step: Step) -> str:
    """`tool {"param": value}` — a plan step as the model should write it in `<tool_call>`."""
    if not step.params:
        return step.tool
    return f"{step.tool} {json.dumps(dict(step.params), separators=(', ', ': '))}"


def render_plan(steps: Sequence[Step]) -> str:
    """Numbered plan lines, each a call and its purpose."""
    tools = load_tools()
    return "\n".join(
        f"{n}. {format_call(step)}{STEP_SEPARATOR}{tools[step.tool].description}"
        for n, step in enumerate(steps, 1)
    )


_STEP_LINE = re.compile(r"^\d+\. (.*)$")


def parse_plan(prompt: str) -> list[Step]:
    """The plan steps shown in a prompt (the inverse of `render_plan`); [] if there is none."""
    if PLAN_HEADER not in prompt:
        return []
    steps: list[Step] = []
    for line in prompt.split(PLAN_HEADER, 1)[1].strip().splitlines():
        if not (m := _STEP_LINE.match(line)):
            break
        name, _, raw = m.group(1).split(STEP_SEPARATOR)[0].partition(" ")
        steps.append(Step(name, json.loads(raw) if raw else {}))
    return steps


def render_tool_list() -> str:
    """Every tool on one line: name, category, description and parameters."""
    return "\n".join(
        f"- {t.name} ({t.category}): {t.description} Parameters: {t.signature()}."
        for t in load_tools().values()
    )


def system_prompt(max_turns: int = MAX_TURNS) -> str:
    """The tag protocol, the same for every prompt type."""
    return SYSTEM_PROMPT.format(max_turns=max_turns)


def build_prompt(
    task: Task, prompt_type: str, *, flaw_seed: int = 0, max_turns: int = MAX_TURNS
) -> Prompt:
    """The system and user messages for `task` under `prompt_type`.

    Flawed types show the correct plan with one flaw injected (seeded by `flaw_seed`); the
    prompt does not say so.
    """
    if prompt_type not in PROMPT_TYPES:
        raise PlanError(
            f"unknown prompt type {prompt_type!r}: choose from {', '.join(PROMPT_TYPES)}"
        )
    plan: list[Step] | None = None
    flaw: str | None = None
    task_line = f"{TASK_HEADER}{task.description}"
    if prompt_type == "baseline":
        user = f"{task_line}\n\n{_BASELINE}"
    elif prompt_type == "cot":
        user = f"{task_line}\n\n{TOOLS_HEADER}\n{render_tool_list()}\n\n{_COT}"
    else:
        plan = task.steps()
        if prompt_type in FLAWED_PROMPT_TYPES:
            plan, flaw = inject_flaw(plan, prompt_type, flaw_seed)
        user = f"{task_line}\n\n{PLAN_HEADER}\n{render_plan(plan)}\n\n{_PLAN}"
    messages = (
        {"role": "system", "content": system_prompt(max_turns)},
        {"role": "user", "content": user},
    )
    return Prompt(messages=messages, plan=None if plan is None else tuple(plan), flaw=flaw)

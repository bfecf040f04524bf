"""What a simulated model means to do: the task read from the conversation, the steps it intends.

Its mistakes are made here, before a reply is written: slips in following a plan, a wrong tool
for a sub-goal, neighbours swapped, parameters of its own, overlooked sub-goals.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..suites.workflow.generate import subgoals
from ..suites.workflow.prompts import PLAN_HEADER, TASK_HEADER, TOOLS_HEADER, parse_plan
from ..suites.workflow.protocol import Event, parse_feedback
from ..suites.workflow.tasks import Step, Task, find_task
from ..suites.workflow.tools import load_tools
from .profiles import SkillProfile

Mode = Literal["plan", "tools", "search"]


def mix(*parts: object) -> int:
    """A 64-bit seed from any parts, the same on every machine and in every run."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# ---- reading the opening prompt ----------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    prompt: str
    task: Task
    mode: Mode
    shown: list[Step]
    history: list[list[Event]]  # feedback after each earlier reply


def read(messages: Sequence[Mapping[str, Any]]) -> Setup | None:
    """The task, prompt type, shown plan and feedback so far; None if not a benchmark chat."""
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    prompt = next((u for u in users if u.startswith(TASK_HEADER)), None)
    if prompt is None:
        return None
    task = find_task(prompt.splitlines()[0][len(TASK_HEADER) :])
    if task is None:
        return None
    mode: Mode = (
        "plan" if PLAN_HEADER in prompt else "tools" if TOOLS_HEADER in prompt else "search"
    )
    shown = parse_plan(prompt) if mode == "plan" else []
    start = users.index(prompt) + 1
    history = [parse_feedback(u) for u in users[start:]]
    return Setup(prompt, task, mode, shown, history)


# ---- the brain's state and intended steps ---------------------------------------------------


@dataclass(slots=True)
class State:
    steps: list[Step] | None = None  # intended steps (None until a baseline search is done)
    clauses: list[tuple[int, str]] = field(default_factory=list)  # baseline sub-goals to search
    hits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    failures: dict[int, str] = field(default_factory=dict)  # step → last error code
    attempts: dict[int, int] = field(default_factory=dict)
    fixed: set[int] = field(default_factory=set)
    knows_params: bool = False
    info_done: bool = False
    helps: int = 0


def _visibility(shown: Sequence[Step], true: Sequence[Step]) -> float:
    # how glaring a plan's flaw is: repeated steps jump out, a wrong parameter hides well
    st, tt = [s.tool for s in shown], [s.tool for s in true]
    if len(st) != len(set(st)):
        return 0.8
    if st == tt:
        return 0.35
    if sorted(st) == sorted(tt):
        return 0.55
    if set(st) < set(tt):
        return 0.6  # the task text names a sub-goal the plan lacks
    return 0.7 if set(tt) < set(st) else 0.55


def _own_params(step: Step, p: SkillProfile, rng: random.Random) -> Step:
    # without a plan the model writes parameters itself: often none, sometimes wrong ones
    if rng.random() < 0.5:
        return Step(step.tool, {})
    if rng.random() < p.params:
        return step
    wrong = {f"{k}_name": v for k, v in step.params.items()}
    return Step(step.tool, wrong)


def _distractor(step: Step, task: Task, rng: random.Random) -> Step:
    tools = load_tools()
    same = [t for t in tools.values() if t.category == tools[step.tool].category]
    pool = [t.name for t in same if t.name not in task.required_tools] or [step.tool]
    return Step(rng.choice(pool), {})


def _slip(steps: list[Step], chance: float, task: Task, rng: random.Random) -> list[Step]:
    """Per-step mistakes of an inattentive model: skip, swap with the next, or a wrong tool."""
    out = list(steps)
    k = 0
    while k < len(out):
        if rng.random() < chance:
            kind = rng.choice(("skip", "swap", "wrong"))
            if kind == "skip" and len(out) > 1:
                del out[k]
                continue
            if kind == "swap" and k + 1 < len(out):
                out[k], out[k + 1] = out[k + 1], out[k]
            else:
                out[k] = _distractor(out[k], task, rng)
        k += 1
    return out


def plan(setup: Setup, p: SkillProfile, rng: random.Random) -> State:
    """The steps the model means to take (for search: the sub-goals it means to look up)."""
    task, true = setup.task, setup.task.steps()
    if setup.mode == "plan":
        base = setup.shown
        flawed = [(s.tool, dict(s.params)) for s in base] != [
            (s.tool, dict(s.params)) for s in true
        ]
        if flawed and rng.random() < p.notice * _visibility(base, true):
            base = true
        return State(steps=_slip(base, 1 - p.follow, task, rng))
    if setup.mode == "tools":
        own = [_own_params(s, p, rng) for s in true]
        # without a plan every sub-goal is a chance to pick wrongly
        return State(steps=reorder(_slip(own, 1.2 * (1 - p.choose), task, rng), p, rng))
    # the description names one sub-goal per required tool, in order; a weak model overlooks some
    parts = list(enumerate(subgoals(task.description)))
    kept = [c for c in parts if rng.random() >= (1 - p.choose) * 0.4]
    return State(clauses=kept or parts[:1])


def reorder(steps: list[Step], p: SkillProfile, rng: random.Random) -> list[Step]:
    if len(steps) > 1 and rng.random() > p.order:
        k = rng.randrange(len(steps) - 1)
        steps[k], steps[k + 1] = steps[k + 1], steps[k]
    return steps


def choose(
    index: int, clause: str, hits: Sequence[str], task: Task, p: SkillProfile, seed: int
) -> Step | None:
    """Pick a search hit for a sub-goal: the right tool with probability `choose` if it is there."""
    if not hits:
        return None
    rng = random.Random(mix(seed, "choose", clause))
    tools = load_tools()
    right = task.required_tools[index] if index < len(task.required_tools) else ""
    if right in hits and rng.random() < p.choose:
        name = right
    else:
        name = hits[1] if hits[0] == right and len(hits) > 1 else hits[0]
    return _own_params(Step(name, tools[name].example_params() if name in tools else {}), p, rng)

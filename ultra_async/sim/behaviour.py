"""The simulated models' brain: plays a chat model taking the built-in benchmark, by skill profile.

`respond` is a pure function of (model, messages, seed). It recognises the task and prompt type
from the conversation, then replays its own decisions turn by turn, reading the tool feedback,
so every reply is consistent with what it did before without keeping any state.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..suites.workflow.generate import subgoals
from ..suites.workflow.prompts import (
    PLAN_HEADER,
    TASK_HEADER,
    TOOLS_HEADER,
    format_call,
    parse_plan,
)
from ..suites.workflow.protocol import COMPLETED, Event, parse_feedback
from ..suites.workflow.tasks import Step, Task, find_task
from ..suites.workflow.tools import INVALID_PARAMETERS, load_tools

Mode = Literal["plan", "tools", "search"]
MAX_RETRIES = 2


@dataclass(frozen=True, slots=True)
class SkillProfile:
    """How a simulated model behaves; probabilities are per step or per reply."""

    skill: float
    format_error: float  # a reply without a valid tag
    follow: float  # executes a shown plan step as written
    choose: float  # picks the right tool for a sub-goal without a plan
    order: float  # keeps sub-goals in the right order without a plan
    params: float  # writes correct parameters when it writes them itself
    notice: float  # notices a flaw in a shown plan (scaled by how visible the flaw is)
    retry: float  # retries a failed call
    fix_params: float  # corrects its parameters after INVALID_PARAMETERS
    give_up: float  # declares completion instead of moving on when it stops retrying
    quit: float  # declares completion early, unprompted, on any reply
    batch: int  # tool calls per reply
    search_batch: int  # searches per reply
    info: float  # looks up the found tools' specs before calling them
    thinking: int  # words of reasoning in a <think> block (reasoning models)


def profile(skill: float, **overrides: Any) -> SkillProfile:
    """A profile derived from one overall skill in [0, 1], with explicit overrides."""
    weak = 1.0 - skill
    base = SkillProfile(
        skill=skill,
        format_error=0.35 * weak**1.5,
        follow=0.62 + 0.38 * skill,
        choose=0.5 + 0.5 * skill,
        order=0.7 + 0.3 * skill,
        params=0.5 + 0.5 * skill,
        notice=0.85 * skill**2,
        retry=0.35 + 0.65 * skill,
        fix_params=skill,
        give_up=0.6 * weak,
        quit=0.1 * weak**2,
        batch=3 if skill >= 0.85 else 2 if skill >= 0.6 else 1,
        search_batch=8 if skill >= 0.7 else 3 if skill >= 0.45 else 2,
        info=0.6 * skill,
        thinking=0,
    )
    return replace(base, **overrides)


PROFILES: dict[str, SkillProfile] = {
    "o3-0416-global": profile(0.94, thinking=60),
    "gpt-5-mini": profile(0.9, thinking=30),
    "DeepSeek-R1-0528": profile(0.88, thinking=90, format_error=0.03),
    "gemini-2.5-flash-06-17": profile(0.86),
    "DeepSeek-V3-0324": profile(0.85),
    "kimi-k2": profile(0.84),
    "qwen2.5-72b-instruct": profile(0.78),
    "qwen2.5-32b-instruct": profile(0.72),
    "Llama-3.3-70B-Instruct": profile(0.7),
    "gpt-4o-mini": profile(0.68),
    "qwen2.5-14b-instruct": profile(0.6),
    "qwen2.5-7b-instruct": profile(0.45),
    "qwen2.5-3b-instruct": profile(0.28),
}
DEFAULT_PROFILE = profile(0.6)
_BY_LOWER = {name.lower(): p for name, p in PROFILES.items()}
_INSTANCE = re.compile(r"-\d+$")


def profile_for(model: str) -> SkillProfile:
    """The profile of `model` (a deployment suffix like `-2` ignored); unknown names: default."""
    lowered = model.lower()
    return _BY_LOWER.get(lowered) or _BY_LOWER.get(_INSTANCE.sub("", lowered)) or DEFAULT_PROFILE


def estimate_tokens(text: str) -> int:
    """Roughly four characters per token, as for English text with common tokenizers."""
    return max(1, (len(text) + 3) // 4)


def _mix(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# ---- reading the opening prompt ----------------------------------------------------------------


@dataclass(slots=True)
class _Setup:
    prompt: str
    task: Task
    mode: Mode
    shown: list[Step]
    history: list[list[Event]]  # feedback after each earlier reply


def _read(messages: Sequence[Mapping[str, Any]]) -> _Setup | None:
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
    return _Setup(prompt, task, mode, shown, history)


# ---- the brain's state and decisions -------------------------------------------------------


@dataclass(slots=True)
class _State:
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


def _plan(setup: _Setup, p: SkillProfile, rng: random.Random) -> _State:
    task, true = setup.task, setup.task.steps()
    if setup.mode == "plan":
        base = setup.shown
        flawed = [(s.tool, dict(s.params)) for s in base] != [
            (s.tool, dict(s.params)) for s in true
        ]
        if flawed and rng.random() < p.notice * _visibility(base, true):
            base = true
        return _State(steps=_slip(base, 1 - p.follow, task, rng))
    if setup.mode == "tools":
        own = [_own_params(s, p, rng) for s in true]
        # without a plan every sub-goal is a chance to pick wrongly
        return _State(steps=_reorder(_slip(own, 1.2 * (1 - p.choose), task, rng), p, rng))
    # the description names one sub-goal per required tool, in order; a weak model overlooks some
    parts = list(enumerate(subgoals(task.description)))
    kept = [c for c in parts if rng.random() >= (1 - p.choose) * 0.4]
    return _State(clauses=kept or parts[:1])


def _reorder(steps: list[Step], p: SkillProfile, rng: random.Random) -> list[Step]:
    if len(steps) > 1 and rng.random() > p.order:
        k = rng.randrange(len(steps) - 1)
        steps[k], steps[k + 1] = steps[k + 1], steps[k]
    return steps


def _choose(
    index: int, clause: str, hits: Sequence[str], task: Task, p: SkillProfile, seed: int
) -> Step | None:
    """Pick a search hit for a sub-goal: the right tool with probability `choose` if it is there."""
    if not hits:
        return None
    rng = random.Random(_mix(seed, "choose", clause))
    tools = load_tools()
    right = task.required_tools[index] if index < len(task.required_tools) else ""
    if right in hits and rng.random() < p.choose:
        name = right
    else:
        name = hits[1] if hits[0] == right and len(hits) > 1 else hits[0]
    return _own_params(Step(name, tools[name].example_params() if name in tools else {}), p, rng)


# ---- one reply -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Move:
    text: str
    calls: list[int] = field(default_factory=list)  # indices of the steps called, in order


_THOUGHT = (
    "The task needs its steps in order, and each tool depends on what came before. "
    "Let me check what has run, what failed, and what the next call should be."
)


def _say(body: str, p: SkillProfile) -> str:
    if not p.thinking:
        return body
    # reasoning models think at length before each reply; only the token count matters here
    words = _THOUGHT.split()
    thought = " ".join(words[k % len(words)] for k in range(p.thinking))
    return f"<think>{thought}</think>\n{body}"


def _malformed(name: str, rng: random.Random) -> str:
    # the ways weak models miss the protocol: prose, an unclosed tag, a JSON block, a pseudo-call
    return rng.choice(
        (
            f"I will now use {name} to continue with the task.",
            f"<tool_call>{name}",
            f'```json\n{{"tool": "{name}"}}\n```',
            f"Action: {name}()",
        )
    )


def _next(state: _State, after: int = -1) -> int | None:
    steps = state.steps or []
    return next(
        (k for k in range(after + 1, len(steps)) if k not in state.done | state.dropped), None
    )


def _finish(gave_up: bool) -> str:
    if gave_up:
        return f"I cannot get the remaining steps to work, so I will stop here. {COMPLETED}"
    return f"All steps have been carried out. {COMPLETED}"


def _decide(setup: _Setup, state: _State, p: SkillProfile, rng: random.Random, seed: int) -> _Move:
    """The next reply, given everything learnt so far; records its own decisions in `state`."""
    tools = load_tools()
    guess = (state.steps or setup.task.steps())[0].tool
    if rng.random() < p.format_error * 0.5**state.helps:
        return _Move(_malformed(guess, rng))
    if setup.mode == "search" and state.steps is None:
        pending = [c for _, c in state.clauses if c not in state.hits]
        if pending:
            tags = "".join(f"<tool_search>{c}</tool_search>\n" for c in pending[: p.search_batch])
            return _Move(_say(f"I need to find the right tools first.\n{tags}", p))
        chosen = [_choose(i, c, state.hits[c], setup.task, p, seed) for i, c in state.clauses]
        state.steps = _reorder([s for s in chosen if s], p, random.Random(_mix(seed, "order")))
    if setup.mode == "search" and not state.info_done:
        state.info_done = True
        if rng.random() < p.info and state.steps:
            names = dict.fromkeys(s.tool for s in state.steps)
            tags = "".join(f"<tool_info>{n}</tool_info>\n" for n in names)
            return _Move(_say(f"Let me check how these tools are called.\n{tags}", p))
    i = _next(state)
    if i is None:
        return _Move(_say(_finish(gave_up=False), p))
    if rng.random() < p.quit:
        return _Move(_say(_finish(gave_up=True), p))
    if i in state.failures:
        bad_params = state.failures[i] == INVALID_PARAMETERS
        if bad_params and rng.random() < p.fix_params:
            state.fixed.add(i)
        elif state.attempts.get(i, 0) > MAX_RETRIES or rng.random() >= p.retry:
            if rng.random() < p.give_up:
                return _Move(_say(_finish(gave_up=True), p))
            state.dropped.add(i)
            i = _next(state, i)
            if i is None:
                return _Move(_say(_finish(gave_up=False), p))
    steps = state.steps or []
    calls = [i]
    while len(calls) < p.batch and (k := _next(state, calls[-1])) is not None:
        if k in state.failures:
            break
        calls.append(k)
    lines = []
    for k in calls:
        step = steps[k]
        knows = k in state.fixed or (setup.mode == "search" and state.knows_params)
        if knows and step.tool in tools:
            step = Step(step.tool, tools[step.tool].example_params())
        lines.append(f"<tool_call>{format_call(step)}</tool_call>")
    intro = "Continuing with the next step." if len(calls) == 1 else "Running the next steps."
    if setup.mode == "tools" and not state.attempts:
        # chain-of-thought prompts get the plan spelled out before the first call
        listed = "\n".join(f"{n}. {s.tool}" for n, s in enumerate(steps, 1))
        intro = f"Let me think step by step. The sub-goals map to these tools:\n{listed}"
    return _Move(_say(intro + "\n" + "\n".join(lines), p), calls)


def _apply(state: _State, move: _Move, events: Sequence[Event]) -> None:
    """Learn from the feedback to `move`: search hits, tool specs, and call results."""
    results = [e for e in events if e.kind == "result"]
    for event in events:
        if event.kind == "search":
            state.hits[event.target] = event.hits
        elif event.kind == "info":
            state.knows_params = True
        elif event.kind == "format_help":
            state.helps += 1
    for k in move.calls:
        tool = (state.steps or [])[k].tool
        match = next((e for e in results if e.target == tool), None)
        if match is None:
            continue
        results.remove(match)
        state.attempts[k] = state.attempts.get(k, 0) + 1
        if match.ok:
            state.done.add(k)
            state.failures.pop(k, None)
        else:
            state.failures[k] = match.code or ""


def respond(model: str, messages: Sequence[Mapping[str, Any]], *, seed: int) -> str:
    """The simulated `model`'s next reply to `messages`; the same inputs give the same reply."""
    p = profile_for(model)
    setup = _read(messages)
    if setup is None:
        # not a benchmark conversation: answer briefly rather than fail
        return f"Understood. {COMPLETED}"
    base = _mix(model, seed, setup.prompt)
    state = _plan(setup, p, random.Random(_mix(base, "plan")))
    for turn, events in enumerate(setup.history):
        move = _decide(setup, state, p, random.Random(_mix(base, turn)), base)
        _apply(state, move, events)
    return _decide(setup, state, p, random.Random(_mix(base, len(setup.history))), base).text

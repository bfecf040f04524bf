"""The simulated models' brain: plays a chat model taking the built-in benchmark, by skill profile.

`respond` is a pure function of (model, messages, seed). It recognises the task and prompt type
from the conversation, then replays its own decisions turn by turn, reading the tool feedback,
so every reply is consistent with what it did before without keeping any state. Here each reply
is decided and the feedback to it learnt from; the skill profiles are in `profiles.py`, what the
model means to do in `_intent.py`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..suites.workflow.prompts import format_call
from ..suites.workflow.protocol import COMPLETED, Event
from ..suites.workflow.tasks import Step
from ..suites.workflow.tools import INVALID_PARAMETERS, load_tools
from ._intent import Setup, State, choose, mix, plan, read, reorder
from .profiles import DEFAULT_PROFILE, PROFILES, SkillProfile, profile, profile_for

__all__ = [
    "DEFAULT_PROFILE",
    "MAX_RETRIES",
    "PROFILES",
    "SkillProfile",
    "estimate_tokens",
    "profile",
    "profile_for",
    "respond",
]

MAX_RETRIES = 2


def estimate_tokens(text: str) -> int:
    """Roughly four characters per token, as for English text with common tokenizers."""
    return max(1, (len(text) + 3) // 4)


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


def _next(state: State, after: int = -1) -> int | None:
    steps = state.steps or []
    return next(
        (k for k in range(after + 1, len(steps)) if k not in state.done | state.dropped), None
    )


def _finish(gave_up: bool) -> str:
    if gave_up:
        return f"I cannot get the remaining steps to work, so I will stop here. {COMPLETED}"
    return f"All steps have been carried out. {COMPLETED}"


def _decide(setup: Setup, state: State, p: SkillProfile, rng: random.Random, seed: int) -> _Move:
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
        chosen = [choose(i, c, state.hits[c], setup.task, p, seed) for i, c in state.clauses]
        state.steps = reorder([s for s in chosen if s], p, random.Random(mix(seed, "order")))
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


def _apply(state: State, move: _Move, events: Sequence[Event]) -> None:
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
    setup = read(messages)
    if setup is None:
        # not a benchmark conversation: answer briefly rather than fail
        return f"Understood. {COMPLETED}"
    base = mix(model, seed, setup.prompt)
    state = plan(setup, p, random.Random(mix(base, "plan")))
    for turn, events in enumerate(setup.history):
        move = _decide(setup, state, p, random.Random(mix(base, turn)), base)
        _apply(state, move, events)
    return _decide(setup, state, p, random.Random(mix(base, len(setup.history))), base).text

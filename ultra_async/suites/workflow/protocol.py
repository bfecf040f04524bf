"""The text protocol: reading tags from a model's reply, and writing (and reading) feedback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .tools import Tool

COMPLETED = "TASK_COMPLETED"

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<(tool_search|tool_info|tool_call)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")
_PAREN_CALL = re.compile(r"^([A-Za-z_][\w.-]*)\s*\((.*)\)$", re.DOTALL)
_KINDS: dict[str, Literal["search", "info", "call"]] = {
    "tool_search": "search",
    "tool_info": "info",
    "tool_call": "call",
}

ActionKind = Literal["search", "info", "call"]


@dataclass(frozen=True, slots=True)
class Action:
    """One tag from a reply: a search query, or a tool name (with parameters for calls)."""

    kind: ActionKind
    target: str
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a reply asks for: valid actions in order, completion, and malformed tags."""

    actions: tuple[Action, ...]
    completed: bool
    problems: tuple[str, ...] = ()


def _parse_call(body: str) -> Action:
    body = body.strip()
    if body.startswith("{"):
        # the common JSON form {"name": ..., "arguments": {...}}
        raw = json.loads(body)
        name = raw.get("name") or raw.get("tool")
        params = raw.get("parameters", raw.get("arguments", raw.get("params")))
    elif m := _PAREN_CALL.match(body):
        # the function-call form name({...}) that many models write
        name, rest = m.group(1), m.group(2).strip()
        params = json.loads(rest) if rest else None
    else:
        name, _, rest = body.partition(" ")
        rest = rest.strip()
        params = json.loads(rest) if rest else None
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("the tool name is missing or not a name")
    if params is not None and not isinstance(params, dict):
        raise ValueError("parameters must be a JSON object")
    return Action("call", name, params)


def parse_reply(text: str) -> Reply:
    """Read the tags of a reply; reasoning inside `<think>` blocks is ignored."""
    visible = _THINK.sub(" ", text)
    actions: list[Action] = []
    problems: list[str] = []
    for match in _TAG.finditer(visible):
        kind, body = _KINDS[match.group(1).lower()], match.group(2).strip()
        if kind == "call":
            try:
                actions.append(_parse_call(body))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                problems.append(f"could not read <tool_call>{body[:60]}</tool_call>: {exc}")
        elif not body or (kind == "info" and not _NAME.match(body)):
            problems.append(f"empty or invalid <tool_{kind}> tag")
        else:
            actions.append(Action(kind, body))
    return Reply(tuple(actions), COMPLETED in visible, tuple(problems))


# ---- feedback the executor sends back, one block per action -------------------------------

FORMAT_HELP = (
    "FORMAT HELP: no valid action found in your reply. Use <tool_search>keywords</tool_search>, "
    '<tool_info>tool_name</tool_info> or <tool_call>tool_name {"parameter": "value"}</tool_call>, '
    f"or reply {COMPLETED} when the task is done."
)


def search_feedback(query: str, tools: Sequence[Tool]) -> str:
    """The result block of a `<tool_search>`."""
    if not tools:
        return f'SEARCH RESULTS for "{query}": no matching tools'
    lines = [f"- {t.name}: {t.description}" for t in tools]
    return f'SEARCH RESULTS for "{query}":\n' + "\n".join(lines)


def info_feedback(name: str, tool: Tool | None) -> str:
    """The result block of a `<tool_info>`."""
    if tool is None:
        return f"TOOL INFO {name}: unknown tool; use <tool_search> to find tools"
    return f"TOOL INFO {name}: {json.dumps(tool.spec())}"


def result_feedback(name: str, *, ok: bool, detail: str, code: str | None = None) -> str:
    """The result line of a `<tool_call>`."""
    status = "success" if ok else f"error {code}"
    return f"TOOL RESULT {name}: {status} — {detail}"


def feedback_message(blocks: Iterable[str], turns_left: int) -> str:
    """All blocks of one turn, and how many replies remain."""
    return "\n".join([*blocks, f"({turns_left} replies left)"])


# ---- reading feedback back (the simulated model does this) --------------------------------

_SEARCH_LINE = re.compile(r'^SEARCH RESULTS for "(?P<query>.*)":(?P<none> no matching tools)?$')
_HIT_LINE = re.compile(r"^- (?P<name>[\w.-]+): ")
_INFO_LINE = re.compile(r"^TOOL INFO (?P<name>[\w.-]+): ")
_RESULT_LINE = re.compile(r"^TOOL RESULT (?P<name>[\w.-]+): (?:success|error (?P<code>\w+)) — ")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing the feedback reports: search hits, tool info, a call result, or format help."""

    kind: Literal["search", "info", "result", "format_help"]
    target: str = ""
    hits: tuple[str, ...] = ()
    ok: bool = False
    code: str | None = None


def parse_feedback(text: str) -> list[Event]:
    """The events of a feedback message, in order."""
    events: list[Event] = []
    search: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        if search is not None and (hit := _HIT_LINE.match(line)):
            search[1].append(hit.group("name"))
            continue
        if search is not None:
            events.append(Event("search", search[0], tuple(search[1])))
            search = None
        if m := _SEARCH_LINE.match(line):
            if m.group("none"):
                events.append(Event("search", m.group("query")))
            else:
                search = (m.group("query"), [])
        elif m := _INFO_LINE.match(line):
            events.append(Event("info", m.group("name")))
        elif m := _RESULT_LINE.match(line):
            code = m.group("code")
            events.append(Event("result", m.group("name"), ok=code is None, code=code))
        elif line.startswith("FORMAT HELP:"):
            events.append(Event("format_help"))
    if search is not None:
        events.append(Event("search", search[0], tuple(search[1])))
    return events

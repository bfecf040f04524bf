"""The simulated tools: their specs (shipped as JSON), parameter checks and the success rule."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: protocol-level error codes, shared by every tool (not part of a tool's declared errors)
INVALID_PARAMETERS = "INVALID_PARAMETERS"
UNKNOWN_TOOL = "UNKNOWN_TOOL"

MIN_SUCCESS_PROBABILITY = 0.1
MAX_SUCCESS_PROBABILITY = 0.95

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a tool."""

    name: str
    type: str
    required: bool
    example: Any
    description: str

    def accepts(self, value: Any) -> bool:
        """Whether `value` has this parameter's JSON type."""
        # bool is an int subclass in Python, but not a JSON number
        if isinstance(value, bool) and self.type != "boolean":
            return False
        return isinstance(value, _PYTHON_TYPES[self.type])


@dataclass(frozen=True, slots=True)
class Tool:
    """A simulated tool: what it does, its parameters, what must run before it, how it fails."""

    name: str
    category: str
    description: str
    parameters: tuple[Param, ...]
    dependencies: tuple[str, ...]
    errors: tuple[str, ...]
    output: str
    #: tools whose effect a successful call of this one reverses ("*": every earlier result)
    undoes: tuple[str, ...] = ()

    def reverts(self, succeeded: set[str]) -> set[str]:
        """Which of the tools that ran successfully lose their effect when this one succeeds."""
        if "*" in self.undoes:
            return succeeded - {self.name}
        return succeeded & set(self.undoes)

    def example_params(self) -> dict[str, Any]:
        """The required parameters with their example values: what a correct call passes."""
        return {p.name: p.example for p in self.parameters if p.required}

    def check_params(self, params: Mapping[str, Any] | None) -> str | None:
        """Why `params` are invalid for this tool, or None if they are fine (None = not given)."""
        if params is None:
            return None
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            return f"unknown parameter {unknown[0]!r}"
        for p in self.parameters:
            if p.name not in params:
                if p.required:
                    return f"missing required parameter {p.name!r}"
            elif not p.accepts(params[p.name]):
                return f"parameter {p.name!r} must be a {p.type}"
        return None

    def signature(self) -> str:
        """Parameters as `name (type, required), ...` for prompts and error messages."""
        parts = [
            f"{p.name} ({p.type}{', required' if p.required else ''})" for p in self.parameters
        ]
        return ", ".join(parts)

    def spec(self) -> dict[str, Any]:
        """The tool as a JSON-able dict, as `<tool_info>` shows it."""
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "parameters": [
                {"name": p.name, "type": p.type, "required": p.required, "example": p.example}
                for p in self.parameters
            ],
            "dependencies": list(self.dependencies),
            "errors": list(self.errors),
            "output": self.output,
            "undoes": list(self.undoes),
        }


def _tool_from_json(raw: Mapping[str, Any]) -> Tool:
    return Tool(
        name=raw["name"],
        category=raw["category"],
        description=raw["description"],
        parameters=tuple(Param(**p) for p in raw["parameters"]),
        dependencies=tuple(raw["dependencies"]),
        errors=tuple(raw["errors"]),
        output=raw["output"],
        undoes=tuple(raw.get("undoes", ())),
    )


@cache
def load_tools() -> dict[str, Tool]:
    """The shipped tool registry, by name, in file order (loaded once)."""
    text = (
        resources.files("ultra_async.suites.workflow")
        .joinpath("data/tools.json")
        .read_text("utf-8")
    )
    return {t.name: t for t in map(_tool_from_json, json.loads(text)["tools"])}


def success_probability(tool_success_rate: float, unmet_dependencies: int) -> float:
    """P(call succeeds): the rate, halved per unmet dependency, clamped to [0.1, 0.95]."""
    p = tool_success_rate * 0.5**unmet_dependencies
    return min(MAX_SUCCESS_PROBABILITY, max(MIN_SUCCESS_PROBABILITY, p))


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The result of one simulated tool execution."""

    ok: bool
    error: str | None
    unmet_dependencies: int


def simulate_call(
    tool: Tool,
    tool_success_rate: float,
    succeeded: set[str],
    rng: random.Random,
) -> CallOutcome:
    """Execute `tool` once: one draw for success, one more for the error code on failure.

    `succeeded` holds the tools that already ran successfully in this test; a dependency
    not in it is unmet.
    """
    unmet = sum(1 for dep in tool.dependencies if dep not in succeeded)
    if rng.random() < success_probability(tool_success_rate, unmet):
        return CallOutcome(ok=True, error=None, unmet_dependencies=unmet)
    return CallOutcome(ok=False, error=rng.choice(tool.errors), unmet_dependencies=unmet)

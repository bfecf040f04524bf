"""What the simulated models say: a pluggable function from a conversation to a reply."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: (real model name, messages, whole request body) → the assistant's reply text
Responder = Callable[[str, list[dict[str, Any]], dict[str, Any]], str]

_BRAIN_MODULE = "ultra_async.sim.behaviour"


def default_responder(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Finish every task at once: cheap, deterministic, and enough for transport tests."""
    return "TASK_COMPLETED"


def _load_brain() -> Callable[..., str] | None:
    try:
        module = importlib.import_module(_BRAIN_MODULE)
    except ModuleNotFoundError as exc:
        # only the brain module itself being absent is tolerated; a broken import inside it is a bug
        if exc.name == _BRAIN_MODULE:
            return None
        raise
    respond: Callable[..., str] = module.respond
    return respond


def brain_available() -> bool:
    """Whether the simulated model behaviour (`ultra_async.sim.behaviour`) is installed."""
    return _load_brain() is not None


def brain_responder(seed: int) -> Responder:
    """Replies from the per-model skill profiles of `ultra_async.sim.behaviour.respond`.

    Falls back to `default_responder` when that module is absent, so the simulator always runs;
    check `brain_available()` to tell the two apart.
    """
    respond = _load_brain()
    if respond is None:
        return default_responder

    def reply(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        # a client's per-request `seed` (the benchmark sends the test's) varies the model's
        # choices between instances; the server seed varies whole runs
        request_seed = body.get("seed")
        if isinstance(request_seed, int) and not isinstance(request_seed, bool):
            return respond(model, messages, seed=(seed * 1_000_003 + request_seed) & (2**63 - 1))
        return respond(model, messages, seed=seed)

    return reply

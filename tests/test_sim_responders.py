"""Responders: the default one, and the lazily imported model behaviour with its fallback."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import pytest

from ultra_async.sim import SimServer, brain_available, brain_responder, default_responder

BRAIN = "ultra_async.sim.behaviour"


def test_default_responder_completes_at_once() -> None:
    assert default_responder("m", [{"role": "user", "content": "x"}], {}) == "TASK_COMPLETED"


def test_without_the_behaviour_module_the_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, BRAIN, None)  # makes `import` fail as if it were absent
    assert not brain_available()
    assert brain_responder(seed=1) is default_responder


async def test_brain_responder_passes_the_real_model_messages_and_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int, int]] = []

    def respond(model: str, messages: Sequence[Mapping[str, Any]], *, seed: int) -> str:
        calls.append((model, len(messages), seed))
        return f"{model} says hi"

    fake = types.ModuleType(BRAIN)
    fake.respond = respond  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, BRAIN, fake)
    assert brain_available()
    server = SimServer(models={"dep-2": "Model"}, responder=brain_responder(seed=42))
    async with server, aiohttp.ClientSession() as session:
        url = f"{server.base_url}/openai/deployments/dep-2/chat/completions?api-version=1"
        body = {"messages": [{"role": "user", "content": "hello"}]}
        async with session.post(url, json=body, headers={"api-key": "k"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["choices"][0]["message"]["content"] == "Model says hi"
    assert calls == [("Model", 1, 42)]

"""A run against the embedded simulator: the server for a config, and the replies a suite gives."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

from .config import Config
from .planner import Plan
from .suites.suite import Responder, Suite
from .types import WorkItem


def case_responder(suite: Suite, plan: Plan, run_seed: int) -> Responder:
    """The simulator's replies for a suite with `simulate`: the case is found by the request's
    `user` field (the work item id the engine sends to the embedded simulator)."""
    assert suite.simulate is not None
    simulate = suite.simulate
    items: dict[str, WorkItem] = {item.id: item for sp in plan.shards for item in sp.items}
    with_messages = suite.simulate_takes_messages()

    def reply(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        item = items.get(str(body.get("user", "")))
        if item is None:
            return "I cannot tell which case this is."
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        rng = random.Random(item.seed_with(run_seed) + turn)
        if with_messages:
            return simulate(item.case, model, rng, messages=messages)  # type: ignore[call-arg]
        return simulate(item.case, model, rng)

    return reply


def suite_responder(suite: Suite, plan: Plan, seed: int) -> Responder | None:
    """The simulated model of a suite: its `simulate`, its own responder, or None (default)."""
    if suite.simulate is not None:
        return case_responder(suite, plan, seed)
    if suite.responder is not None:
        return suite.responder(seed)
    return None


@contextlib.asynccontextmanager
async def simulator(
    config: Config, simulate: bool, seed: int, latency_ms: float | None, responder: Responder | None
) -> AsyncIterator[tuple[dict[str, SecretStr] | None, dict[str, str], Any]]:
    """Start the embedded simulator for this config, or yield nothing to talk to real APIs."""
    if not simulate:
        yield None, {}, None
        return
    from .sim import Latency, sim_setup_from_config

    setup = sim_setup_from_config(config, seed=seed)
    options_: dict[str, Any] = {}
    if responder is not None:
        options_["responder"] = responder
    if latency_ms is not None:
        options_["latency"] = Latency(median_ms=latency_ms)
    async with setup.server(**options_) as sim:
        keys = {name: SecretStr(secret) for name, secret in setup.secrets.items()}
        base_urls = {
            name: sim.base_url_for(spec.kind) for name, spec in config.data.providers.items()
        }
        yield keys, base_urls, sim

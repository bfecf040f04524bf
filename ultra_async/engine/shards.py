"""The live state of shards while a plan runs, and the pool idle workers steal work from."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from pydantic import SecretStr

from .._input import check_keys
from ..config_extras import GenerationSettings
from ..errors import ConfigError
from ..types import Shard, WorkItem
from .client import ChatClient, Endpoint, transport_timeout
from .limits import KeyLimits, ShardLimits
from .retry import Retrier

if TYPE_CHECKING:
    from ..config import Config
    from ..planner import Plan


@dataclass(slots=True)
class ShardState:
    """Live counters of one shard, read by progress displays and the run summary."""

    shard: Shard
    limits: ShardLimits
    queue: deque[WorkItem]
    planned: int
    #: what the shard's requests need: the session's client, the key, timeouts, retry policy
    client: ChatClient
    key: SecretStr
    request_timeout: aiohttp.ClientTimeout
    retrier: Retrier
    #: the model's generation params, parameter rules and price
    settings: GenerationSettings
    #: URL, headers and model name of the shard's requests, built once
    endpoint: Endpoint
    #: a request's whole time (None: `request_timeout` holds it, for aiohttp to keep)
    request_total_s: float | None = None
    done: int = 0
    infra_errors: int = 0
    evaluate_errors: int = 0
    request_errors: int = 0
    #: spent on this shard's responses, from the model's `price` (0 without one)
    cost: float = 0.0
    in_flight: int = 0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    #: requests answered from the response cache
    cached: int = 0
    stolen: int = 0
    #: input + output tokens of the shard's answered requests (for measured tokens/min)
    tokens: int = 0
    dead: str | None = None
    #: tests in a row that ended with retries exhausted on server or connection errors
    failing_streak: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "model": self.shard.model,
            "shard": self.shard.name,
            "planned": self.planned,
            "queued": len(self.queue),
            "done": self.done,
            "infra_errors": self.infra_errors,
            "evaluate_errors": self.evaluate_errors,
            "request_errors": self.request_errors,
            "cost": self.cost,
            "in_flight": self.in_flight,
            "peak_in_flight": self.limits.tests.peak,
            "workers": self.limits.tests.limit,
            "workers_max": int(self.shard.workers.max),
            "qps": self.limits.qps,
            "qps_max": self.shard.qps.max,
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "cached": self.cached,
            "stolen": self.stolen,
            "tokens": self.tokens,
            "dead": self.dead,
        }


class ModelPool:
    """The shards of one model: where idle workers look for work to steal."""

    def __init__(self, states: list[ShardState]) -> None:
        self.states = states
        self.in_flight = 0
        self._changed = asyncio.Event()
        self._waiting = 0

    def take(self, state: ShardState) -> WorkItem | None:
        """The next item for a worker of `state`: its own queue first, else a sibling's surplus.

        A sibling's surplus is the queued work it cannot start now (queue longer than its free
        test slots; all of it when the shard is dead), so idle workers help a slow or dead shard
        without racing a healthy sibling for work it is about to start.
        """
        if state.queue:
            return state.queue.popleft()
        donor = max(self.states, key=surplus)
        if surplus(donor) > 0:
            state.stolen += 1
            return donor.queue.pop()
        return None

    @property
    def queued(self) -> int:
        return sum(len(s.queue) for s in self.states)

    @property
    def all_dead(self) -> bool:
        return all(s.dead for s in self.states)

    def notify(self) -> None:
        if self._waiting:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait(self) -> None:
        self._waiting += 1
        try:
            await self._changed.wait()
        finally:
            self._waiting -= 1


def surplus(state: ShardState) -> int:
    if state.dead is not None:
        return len(state.queue)
    slots = state.limits.tests
    return len(state.queue) - max(0, slots.limit - slots.in_use)


def build_states(
    plan: Plan,
    config: Config,
    *,
    client: ChatClient,
    keys: Mapping[str, SecretStr],
    base_urls: Mapping[str, str],
) -> list[ShardState]:
    """The live state of every shard of `plan`: its limits (shard and key level), its route
    (a provider's base URL replaced when given), its key, timeouts and retry policy."""
    models = {sp.shard.model for sp in plan.shards}
    timeouts = {m: transport_timeout(config.timeouts_of(m)) for m in models}
    totals = {m: config.timeouts_of(m).total_s for m in models}
    retriers = {m: Retrier(config.retry_of(m)) for m in timeouts}
    key_limits: dict[str, KeyLimits] = {}
    for name in {sp.shard.route.key_name for sp in plan.shards}:
        spec = config.data.keys[name]
        burst = spec.burst or config.data.defaults.burst
        key_limits[name] = KeyLimits(spec.qps, burst, spec.max_in_flight, tpm=spec.tpm)
    states = []
    for sp in plan.shards:
        shard = sp.shard
        if shard.route.provider in base_urls:
            route = dataclasses.replace(shard.route, base_url=base_urls[shard.route.provider])
            shard = dataclasses.replace(shard, route=route)
        limits = ShardLimits(
            shard.workers,
            shard.qps,
            shard.burst,
            key_limits[shard.route.key_name],
            tpm=config.models[shard.model].tpm,
        )
        states.append(
            ShardState(
                shard,
                limits,
                deque(sp.items),
                len(sp.items),
                client=client,
                key=keys[shard.route.key_name],
                request_timeout=timeouts[shard.model],
                request_total_s=totals[shard.model],
                retrier=retriers[shard.model],
                settings=config.settings_of(shard.model),
                endpoint=Endpoint(shard.route, shard.api_model, keys[shard.route.key_name]),
            )
        )
    return states


def run_keys(
    config: Config, plan: Plan, given: Mapping[str, SecretStr] | None
) -> dict[str, SecretStr]:
    """The secret of every key the plan's shards use: `given`, else the environment.

    A key without an environment variable is a keyless endpoint (an empty secret). Every secret
    is registered for redaction; one with spaces or control characters is refused, and so is a
    plan whose keys have no secret (ConfigError naming them, never a value).
    """
    models = sorted({sp.shard.model for sp in plan.shards})
    keys = dict(given) if given is not None else config.resolve_keys(models)
    needed = {sp.shard.route.key_name for sp in plan.shards}
    for name in needed - set(keys):
        if config.data.keys[name].env is None:
            keys[name] = SecretStr("")  # a keyless endpoint
    # registers every key as a secret; refuses one with spaces or control characters
    check_keys(
        {f"key {n!r}": k.get_secret_value() for n, k in keys.items() if k.get_secret_value()}
    )
    missing = sorted(needed - set(keys))
    if missing:
        raise ConfigError(f"no secret given for key(s) {', '.join(missing)}; pass them in keys=")
    return keys

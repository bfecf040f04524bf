"""Let the simulator stand in for the providers of a config: fake keys, model names, limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..planner import build_shards
from ..types import ApiKind
from .buckets import RateRule
from .responders import brain_responder
from .server import SimServer

#: the server's burst allowance: above the engine's own (`defaults.burst`, 2) so arrival jitter
#: of a client that keeps to the configured rate is never mistaken for a burst
SIM_BURST = 5


@dataclass(frozen=True, slots=True)
class SimSetup:
    """What a simulator needs to stand in for every provider and model of a config."""

    #: key name → the fake secret the simulator accepts for it
    secrets: Mapping[str, str]
    #: environment variable of each key → its fake secret (for `Config.resolve_keys(env=...)`)
    env: Mapping[str, str]
    #: requested model or deployment → the real model behind it
    models: Mapping[str, str]
    rules: tuple[RateRule, ...]
    #: each provider's base-URL override variable → the kind of route it takes
    base_url_envs: Mapping[str, ApiKind]
    seed: int

    @property
    def keys(self) -> dict[str, str]:
        """Fake secret → key name, as `SimServer(keys=...)` takes it."""
        return {secret: name for name, secret in self.secrets.items()}

    def server(self, **options: Any) -> SimServer:
        """A `SimServer` with these keys, models and limits; `options` go to its constructor.

        The responder defaults to the simulated model behaviour seeded with `seed`.
        """
        options.setdefault("keys", self.keys)
        options.setdefault("models", self.models)
        options.setdefault("rules", self.rules)
        options.setdefault("seed", self.seed)
        if "responder" not in options:
            options["responder"] = brain_responder(self.seed)
        return SimServer(**options)

    def environ(self, server: SimServer) -> dict[str, str]:
        """Environment that points a config at a running simulator: fake keys and base URLs."""
        env = dict(self.env)
        for var, kind in self.base_url_envs.items():
            env[var] = server.base_url_for(kind)
        return env


def fake_secret(key_name: str) -> str:
    """The simulator's secret for a key name; public by design, never a real key."""
    return f"sim-{key_name}"


def sim_setup_from_config(config: Config, *, seed: int, burst: int | None = None) -> SimSetup:
    """The simulator setup that mirrors `config`: one bucket per shard, one per limited key.

    Each shard (key name, requested model or deployment) gets a bucket at the shard's QPS:
    the fixed value, or `start` for adaptive ranges, so an engine that adapts upwards meets
    the 429s its controller is built for; no request bucket when `qps` is left out. A `tpm`
    (per model: each shard; per key: shared) becomes a token limit of the same rule. Keys
    with a key-level `qps` or `tpm` get one more bucket shared by every model on the key.
    Bursts are `max(SIM_BURST, configured burst)`, or `burst` for every bucket when given
    (e.g. the configured burst exactly, to check that a client keeping to it is never refused).
    """
    defaults = config.data.defaults
    # a key without a variable is keyless: the simulator accepts requests with no key for it
    secrets = {
        name: fake_secret(name) if spec.env is not None else ""
        for name, spec in config.data.keys.items()
    }
    env = {spec.env: secrets[name] for name, spec in config.data.keys.items() if spec.env}
    models: dict[str, str] = {}
    rules: dict[tuple[str | None, str | None], RateRule] = {}
    for model in config.models:
        for shard in build_shards(config, model):
            # a name two entries share keeps its first model: they send the same requests
            models.setdefault(shard.api_model, model)
            where = (shard.route.key_name, shard.api_model)
            qps = None if math.isinf(shard.qps.start) else shard.qps.start
            tpm = config.models[model].tpm
            if where not in rules and (qps is not None or tpm is not None):
                rules[where] = RateRule(
                    key=shard.route.key_name,
                    model=shard.api_model,
                    qps=qps,
                    burst=burst or max(SIM_BURST, shard.burst),
                    tpm=tpm,
                )
    for name, spec in config.data.keys.items():
        if spec.qps is not None or spec.tpm is not None:
            key_burst = burst or max(SIM_BURST, spec.burst or defaults.burst)
            rules[(name, None)] = RateRule(
                key=name, model=None, qps=spec.qps, burst=key_burst, tpm=spec.tpm
            )
    base_url_envs: dict[str, ApiKind] = {
        p.base_url_env: p.kind for p in config.data.providers.values() if p.base_url_env
    }
    return SimSetup(
        secrets=secrets,
        env=env,
        models=models,
        rules=tuple(rules.values()),
        base_url_envs=base_url_envs,
        seed=seed,
    )

"""The simulator set up from providers.yaml: fake keys, model names, shard and key limits."""

from __future__ import annotations

import aiohttp
import pytest

from ultra_async.config import Config
from ultra_async.planner import build_shards
from ultra_async.sim import (
    SIM_BURST,
    RateRule,
    SimServer,
    default_responder,
    fake_secret,
    sim_setup_from_config,
)
from ultra_async.types import Route


class FakeClock:
    def __call__(self) -> float:
        return 50.0


def test_fake_secrets_are_distinct_and_not_read_from_the_environment(
    repo_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDEALLAB_API_KEY_0", "a-real-secret")
    setup = sim_setup_from_config(repo_config, seed=3)
    assert set(setup.secrets) == set(repo_config.data.keys)
    assert len(set(setup.secrets.values())) == len(setup.secrets)
    assert setup.secrets["ideallab-0"] == fake_secret("ideallab-0") == "sim-ideallab-0"
    assert "a-real-secret" not in setup.secrets.values()
    assert setup.env["IDEALLAB_API_KEY_0"] == "sim-ideallab-0"
    assert setup.env["AZURE_OSS_API_KEY"] == "sim-azure-oss"
    assert setup.keys["sim-ideallab-2"] == "ideallab-2"
    assert setup.seed == 3


def test_deployments_and_models_map_to_the_real_model(repo_config: Config) -> None:
    setup = sim_setup_from_config(repo_config, seed=0)
    assert setup.models["DeepSeek-V3-0324-2"] == "DeepSeek-V3-0324"
    assert setup.models["DeepSeek-V3-0324-3"] == "DeepSeek-V3-0324"
    assert setup.models["DeepSeek-V3-0324"] == "DeepSeek-V3-0324"
    assert setup.models["Llama-3.3-70B-Instruct-2"] == "Llama-3.3-70B-Instruct"
    assert setup.models["qwen2.5-72b-instruct"] == "qwen2.5-72b-instruct"
    assert setup.models["gpt-4o-mini"] == "gpt-4o-mini"
    assert "qwen-key0" not in setup.models  # a shard name, never sent in a request


def test_one_bucket_per_shard_at_its_start_qps_and_one_per_limited_key(
    repo_config: Config,
) -> None:
    setup = sim_setup_from_config(repo_config, seed=0)
    rules = {(r.key, r.model): r for r in setup.rules}
    assert len(rules) == len(setup.rules)
    shards = [s for m in repo_config.models for s in build_shards(repo_config, m)]
    assert len(setup.rules) == len(shards) + 1  # + the shared closed-source IdealLab key
    assert rules[("ideallab-1", "qwen2.5-7b-instruct")] == RateRule(
        key="ideallab-1", model="qwen2.5-7b-instruct", qps=10.0, burst=SIM_BURST
    )
    # adaptive ranges: the server holds the start value, the engine may probe above it
    assert rules[("azure-oss", "DeepSeek-V3-0324-2")].qps == 100.0
    assert rules[("azure-closed", "gpt-5-mini")].qps == 100.0
    assert rules[("ideallab-closed", None)].qps == 10.0
    assert all(r.burst >= SIM_BURST for r in setup.rules)


async def test_every_shard_route_reaches_the_simulator(repo_config: Config) -> None:
    setup = sim_setup_from_config(repo_config, seed=0)
    async with (
        setup.server(responder=default_responder) as server,
        aiohttp.ClientSession() as session,
    ):
        for model in repo_config.models:
            for shard in build_shards(repo_config, model):
                route = shard.route
                local = Route(
                    provider=route.provider,
                    kind=route.kind,
                    base_url=server.base_url_for(route.kind),
                    key_name=route.key_name,
                    key_env=route.key_env,
                    deployment=route.deployment,
                    api_version=route.api_version,
                )
                secret = setup.env[route.key_env]
                if route.kind == "azure":
                    headers = {"api-key": secret}
                else:
                    headers = {"Authorization": f"Bearer {secret}"}
                body = {"model": shard.api_model, "messages": [{"role": "user", "content": "hi"}]}
                async with session.post(local.url, json=body, headers=headers) as resp:
                    assert resp.status == 200, (shard.name, await resp.text())
                    assert (await resp.json())["model"] == model
        env = setup.environ(server)
        stats = server.stats()
    assert env["IDEALLAB_BASE_URL"] == server.openai_base_url
    assert env["AZURE_OSS_ENDPOINT"] == server.base_url
    assert env["AZURE_API_KEY"] == "sim-azure-closed"
    assert stats["keys"]["ideallab-0"]["ok"] == 5  # one per qwen model
    assert stats["models"]["DeepSeek-V3-0324-2"]["ok"] == 1


async def test_a_shared_key_limits_all_its_models_together(repo_config: Config) -> None:
    setup = sim_setup_from_config(repo_config, seed=0)
    secret = setup.secrets["ideallab-closed"]

    async def call(session: aiohttp.ClientSession, server: SimServer, model: str) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        url = f"{server.openai_base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {secret}"}
        async with session.post(url, json=body, headers=headers) as resp:
            return resp.status

    async with (
        setup.server(responder=default_responder, clock=FakeClock()) as server,
        aiohttp.ClientSession() as session,
    ):
        models = ["o3-0416-global", "gemini-2.5-flash-06-17", "kimi-k2"]
        statuses = [await call(session, server, models[i % 3]) for i in range(SIM_BURST)]
        assert statuses == [200] * SIM_BURST
        # each model's own bucket still has tokens; the key's shared one is empty
        assert [await call(session, server, m) for m in models] == [429, 429, 429]

"""Injected faults as an aiohttp client sees them; latency; prompt shutdown with hung requests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from ultra_async.sim import FaultRule, Latency, SimServer

KEYS = {"secret-a": "key-a", "secret-b": "key-b"}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def url_of(server: SimServer) -> str:
    return f"{server.openai_base_url}/chat/completions"


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    content_type: str
    body: bytes


async def post(
    session: aiohttp.ClientSession,
    server: SimServer,
    *,
    model: str = "m",
    secret: str = "secret-a",
    timeout_s: float | None = None,
) -> Reply:
    """POST a chat request and read the whole answer."""
    async with session.post(
        url_of(server),
        json={**BODY, "model": model},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as resp:
        body = await resp.read()
        return Reply(resp.status, dict(resp.headers), resp.content_type, body)


async def wait_for(predicate: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("kind", "status"), [("error_500", 500), ("error_503", 503)])
async def test_server_errors(kind: str, status: int) -> None:
    faults = [FaultRule(**{kind: 1.0})]  # type: ignore[arg-type]
    async with (
        SimServer(keys=KEYS, faults=faults) as server,
        aiohttp.ClientSession() as session,
    ):
        resp = await post(session, server)
        assert resp.status == status
        body = orjson.loads(resp.body)
        assert body["error"]["type"] == "server_error"
        counts = server.stats()["keys"]["key-a"]
    assert (counts["faults"], counts["ok"], counts["errors"]) == ({kind: 1}, 0, {})


async def test_malformed_json_is_a_200_that_does_not_parse() -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(malformed_json=1.0)]) as server,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": "Bearer secret-a"}
        async with session.post(url_of(server), json=BODY, headers=headers) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            with pytest.raises(json.JSONDecodeError):
                await resp.json()
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(await resp.read())
        assert server.stats()["total"]["faults"] == {"malformed_json": 1}


async def test_dropped_connection_is_a_server_disconnect() -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(drop_connection=1.0)]) as server,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(2):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await post(session, server)
        stats = server.stats()["total"]
    assert stats["faults"] == {"drop_connection": 2}
    assert stats["in_flight"] == 0


async def test_hang_stalls_until_the_client_gives_up() -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(hang=1.0, hang_s=30.0)]) as server,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(TimeoutError):
            await post(session, server, timeout_s=0.1)
        # the client hung up: the server stops the handler instead of sleeping on
        await wait_for(lambda: server.stats()["total"]["in_flight"] == 0)
        assert server.stats()["total"]["faults"] == {"hang": 1}


async def test_a_short_hang_then_answers() -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(hang=1.0, hang_s=0.05)]) as server,
        aiohttp.ClientSession() as session,
    ):
        started = time.monotonic()
        resp = await post(session, server)
        assert resp.status == 200
        assert time.monotonic() - started >= 0.04
        counts = server.stats()["total"]
        assert (counts["ok"], counts["faults"]) == (1, {"hang": 1})


async def test_forced_status_and_faults_scoped_to_a_deployment_or_key() -> None:
    faults = [
        FaultRule(model="dead", status=500),
        FaultRule(model="locked", status=401),
        FaultRule(key="key-b", error_503=1.0),
    ]
    async with (
        SimServer(keys=KEYS, faults=faults) as server,
        aiohttp.ClientSession() as session,
    ):
        assert [(await post(session, server, model="dead")).status for _ in range(3)] == [500] * 3
        resp = await post(session, server, model="locked")
        assert resp.status == 401
        assert orjson.loads(resp.body)["error"]["code"] == "invalid_api_key"
        assert (await post(session, server, model="alive")).status == 200
        assert (await post(session, server, model="alive", secret="secret-b")).status == 503
        models = server.stats()["models"]
        assert models["dead"]["errors"] == {"500": 3}
        assert models["alive"]["ok"] == 1


async def test_forced_429_carries_retry_after() -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(status=429)]) as server,
        aiohttp.ClientSession() as session,
    ):
        resp = await post(session, server)
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["retry-after-ms"] == "1000"


async def test_faults_are_reproducible_from_the_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        faults = [FaultRule(error_500=0.3, error_503=0.3)]
        async with (
            SimServer(keys=KEYS, faults=faults, seed=seed) as server,
            aiohttp.ClientSession() as session,
        ):
            return [(await post(session, server)).status for _ in range(40)]

    first = await statuses(11)
    assert first == await statuses(11)
    assert first != await statuses(12)
    assert {200, 500, 503} == set(first)


async def test_latency_delays_answers_per_model() -> None:
    slow = Latency(median_ms=60.0, sigma=0.0)
    async with (
        SimServer(keys=KEYS, model_latency={"slow": slow}) as server,
        aiohttp.ClientSession() as session,
    ):
        started = time.monotonic()
        assert (await post(session, server, model="slow")).status == 200
        assert time.monotonic() - started >= 0.05
        results = await asyncio.gather(*(post(session, server, model="slow") for _ in range(5)))
        assert [r.status for r in results] == [200] * 5
        # delayed requests overlap: the server held several at once
        assert server.stats()["models"]["slow"]["peak_in_flight"] >= 2


async def test_shutdown_is_prompt_with_hanging_requests_in_flight() -> None:
    server = SimServer(keys=KEYS, faults=[FaultRule(hang=1.0, hang_s=600.0)])
    async with aiohttp.ClientSession() as session:
        async with server:
            tasks = [asyncio.create_task(post(session, server)) for _ in range(3)]
            await wait_for(lambda: server.stats()["total"]["in_flight"] == 3)
            started = time.monotonic()
        assert time.monotonic() - started < 2.0  # loose: the hang was 600 s
        for task in tasks:
            with pytest.raises(aiohttp.ClientError):
                await task
        assert server.stats()["total"]["in_flight"] == 0


async def test_shutdown_cuts_short_slow_answers() -> None:
    server = SimServer(keys=KEYS, latency=Latency(median_ms=60_000.0, sigma=0.0, max_ms=60_000.0))
    async with aiohttp.ClientSession() as session:
        async with server:
            task = asyncio.create_task(post(session, server))
            await wait_for(lambda: server.stats()["total"]["in_flight"] == 1)
            started = time.monotonic()
        assert time.monotonic() - started < 2.0
        with pytest.raises(aiohttp.ClientError):
            await task


async def test_injected_rate_limit_is_a_429_with_the_rules_retry_after() -> None:
    faults = [FaultRule(rate_limit=1.0, retry_after_s=2.5)]
    async with (
        SimServer(keys=KEYS, faults=faults) as server,
        aiohttp.ClientSession() as session,
    ):
        resp = await post(session, server)
        assert resp.status == 429
        assert (resp.headers["Retry-After"], resp.headers["retry-after-ms"]) == ("3", "2500")
        assert orjson.loads(resp.body)["error"]["code"] == "rate_limit_exceeded"
        counts = server.stats()["keys"]["key-a"]
    assert (counts["faults"], counts["rate_limited"], counts["ok"]) == ({"rate_limit": 1}, 1, 0)

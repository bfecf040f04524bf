"""Server-side rate limits over HTTP: bursts, 429s with Retry-After, refill, no cost for rejects."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp
import orjson
import pytest

from ultra_async.sim import RateRule, SimServer

KEYS = {"secret-a": "key-a", "secret-b": "key-b"}
MESSAGES = [{"role": "user", "content": "hello"}]


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


async def call(
    session: aiohttp.ClientSession, server: SimServer, model: str, secret: str = "secret-a"
) -> tuple[int, dict[str, str], Any]:
    url = f"{server.openai_base_url}/chat/completions"
    body = {"model": model, "messages": MESSAGES}
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}) as resp:
        return resp.status, dict(resp.headers), orjson.loads(await resp.read())


async def test_burst_then_429_with_retry_after_then_refill() -> None:
    clock = FakeClock()
    qps, burst = 4.0, 3
    rules = [RateRule(key="key-a", model="m", qps=qps, burst=burst)]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=clock) as server,
        aiohttp.ClientSession() as session,
    ):
        results = await asyncio.gather(*(call(session, server, "m") for _ in range(10)))
        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200] * burst + [429] * (10 - burst)
        for status, headers, body in results:
            assert headers["x-ratelimit-limit-requests"] == "240"
            if status != 429:
                continue
            # the clock stood still: every rejected request waits exactly one refill period
            assert headers["retry-after-ms"] == str(math.ceil(1000 / qps))
            assert headers["Retry-After"] == "1"
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert body["error"]["type"] == "requests"
            assert "Rate limit" in body["error"]["message"]
        clock.now_s += 0.25  # one token back
        assert (await call(session, server, "m"))[0] == 200
        status, headers, _ = await call(session, server, "m")
        assert status == 429
        clock.now_s += 0.1
        assert headers["retry-after-ms"] == "250"
        assert (await call(session, server, "m"))[2]["error"]["code"] == "rate_limit_exceeded"
        clock.now_s += 10.0  # a long pause refills to the burst, not more
        statuses = [(await call(session, server, "m"))[0] for _ in range(burst + 1)]
        assert statuses == [200] * burst + [429]
        stats = server.stats()
    assert stats["keys"]["key-a"]["rate_limited"] == 7 + 2 + 1
    assert stats["models"]["m"]["ok"] == burst + 1 + burst


async def test_remaining_header_counts_down() -> None:
    rules = [RateRule(key="key-a", qps=0.01, burst=3)]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=FakeClock()) as server,
        aiohttp.ClientSession() as session,
    ):
        remaining = []
        for _ in range(3):
            _, headers, _ = await call(session, server, "m")
            remaining.append(headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"]


async def test_retry_after_rounds_up_to_whole_seconds() -> None:
    rules = [RateRule(model="slow", qps=0.4, burst=1)]  # one token per 2.5 s
    async with (
        SimServer(keys=KEYS, rules=rules, clock=FakeClock()) as server,
        aiohttp.ClientSession() as session,
    ):
        assert (await call(session, server, "slow"))[0] == 200
        status, headers, _ = await call(session, server, "slow")
        assert (status, headers["Retry-After"], headers["retry-after-ms"]) == (429, "3", "2500")
        # the rule is per model, shared by all keys
        assert (await call(session, server, "slow", secret="secret-b"))[0] == 429
        assert (await call(session, server, "fast", secret="secret-b"))[0] == 200


async def test_a_rejected_request_does_not_consume_tokens() -> None:
    clock = FakeClock()
    rules = [
        RateRule(key="key-a", qps=0.001, burst=2),  # key-wide
        RateRule(key="key-a", model="a", qps=0.001, burst=1),  # per deployment
    ]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=clock) as server,
        aiohttp.ClientSession() as session,
    ):
        assert (await call(session, server, "a"))[0] == 200
        for _ in range(5):
            assert (await call(session, server, "a"))[0] == 429
        # had the rejects drawn from the key-wide bucket it would be empty now
        assert (await call(session, server, "b"))[0] == 200
        assert (await call(session, server, "b"))[0] == 429
        # another key is not limited by key-a's buckets
        assert (await call(session, server, "a", secret="secret-b"))[0] == 200


@pytest.mark.slow
async def test_real_clock_refills_after_the_advertised_wait() -> None:
    rules = [RateRule(key="key-a", qps=20.0, burst=3)]
    async with SimServer(keys=KEYS, rules=rules) as server, aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(call(session, server, "m") for _ in range(10)))
        ok = sum(1 for status, _, _ in results if status == 200)
        # loose: tokens refill every 50 ms while the ten requests arrive (more on a busy machine)
        assert 3 <= ok <= 8
        wait_ms = max(int(h["retry-after-ms"]) for s, h, _ in results if s == 429)
        assert 1 <= wait_ms <= 50
        await asyncio.sleep(wait_ms / 1000 + 0.01)
        assert (await call(session, server, "m"))[0] == 200

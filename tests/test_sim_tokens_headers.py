"""The simulator's token limits, both styles of x-ratelimit-* headers, Azure's 429, 400 faults."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from ultra_async.engine.headers import parse_rate_limit_headers
from ultra_async.sim import FaultRule, RateRule, SimServer

KEYS = {"secret-a": "key-a"}


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


async def post(
    session: aiohttp.ClientSession, server: SimServer, body: dict[str, Any], *, azure: bool
) -> tuple[int, dict[str, str], Any]:
    if azure:
        url = f"{server.base_url}/openai/deployments/m/chat/completions?api-version=2024-12-01"
        headers = {"api-key": "secret-a"}
    else:
        url = f"{server.openai_base_url}/chat/completions"
        headers = {"Authorization": "Bearer secret-a"}
    async with session.post(url, json={"model": "m", **body}, headers=headers) as resp:
        return resp.status, dict(resp.headers), orjson.loads(await resp.read())


def prompt(chars: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "x" * chars}]


async def test_token_limit_charges_prompt_and_max_tokens_then_settles_to_usage() -> None:
    clock = FakeClock()
    # 6000 tokens per minute: a bucket of 100 tokens refilled at 100 per second
    rules = [RateRule(key="key-a", qps=None, tpm=6000)]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=clock) as server,
        aiohttp.ClientSession() as session,
    ):
        # 40 prompt tokens + max_tokens 50 = 90 charged; the reply uses 4: 44 settled
        status, headers, body = await post(
            session, server, {"messages": prompt(160), "max_tokens": 50}, azure=False
        )
        assert status == 200 and body["usage"]["total_tokens"] == 44
        assert headers["x-ratelimit-limit-tokens"] == "6000"
        assert headers["x-ratelimit-remaining-tokens"] == "10"  # read before settling
        # 56 left after settling: a 40 + 50 request does not fit
        status, headers, body = await post(
            session, server, {"messages": prompt(160), "max_tokens": 50}, azure=False
        )
        assert status == 429
        assert (
            body["error"]["type"] == "tokens" and "tokens per min (TPM)" in body["error"]["message"]
        )
        assert headers["retry-after-ms"] == "340"  # 34 tokens missing at 100 per second
        assert server.stats()["keys"]["key-a"]["tokens"] == 44
        clock.now_s += 0.34
        status, _, _ = await post(
            session, server, {"messages": prompt(160), "max_tokens": 50}, azure=False
        )
        assert status == 200


async def test_openai_and_azure_header_styles_both_parse() -> None:
    clock = FakeClock()
    rules = [RateRule(key="key-a", qps=2.0, burst=4, tpm=60000)]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=clock) as server,
        aiohttp.ClientSession() as session,
    ):
        _, openai_headers, _ = await post(session, server, {"messages": prompt(40)}, azure=False)
        _, azure_headers, _ = await post(session, server, {"messages": prompt(40)}, azure=True)
    assert openai_headers["x-ratelimit-reset-requests"] == "500ms"  # one of four back at 2/s
    parsed = parse_rate_limit_headers(openai_headers)
    assert (parsed.limit_requests, parsed.remaining_requests) == (120, 3)
    assert parsed.reset_requests_s == pytest.approx(0.5)
    assert parsed.limit_tokens == 60000 and parsed.remaining_tokens is not None
    assert "x-ratelimit-limit-requests" not in azure_headers
    assert azure_headers["x-ratelimit-reset-requests"] == "1.000"
    parsed = parse_rate_limit_headers(azure_headers)
    assert (parsed.limit_requests, parsed.remaining_requests) == (None, 2)
    assert parsed.reset_requests_s == pytest.approx(1.0)


async def test_azure_429_is_worded_as_azure_words_it() -> None:
    clock = FakeClock()
    rules = [RateRule(key="key-a", qps=1.0, burst=1)]
    async with (
        SimServer(keys=KEYS, rules=rules, clock=clock) as server,
        aiohttp.ClientSession() as session,
    ):
        results = await asyncio.gather(
            *(post(session, server, {"messages": prompt(4)}, azure=True) for _ in range(2))
        )
    status, headers, body = sorted(results, key=lambda r: r[0])[1]
    assert status == 429 and body["error"]["code"] == "429"
    assert "exceeded call rate limit" in body["error"]["message"]
    assert "Please retry after 1 second." in body["error"]["message"]
    assert headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("fault", "code"), [("content_filter", "content_filter"), ("context_length", None)]
)
async def test_content_filter_and_context_length_faults(fault: str, code: str | None) -> None:
    async with (
        SimServer(keys=KEYS, faults=[FaultRule(**{fault: 1.0})]) as server,
        aiohttp.ClientSession() as session,
    ):
        status, _, body = await post(session, server, {"messages": prompt(4)}, azure=True)
        stats = server.stats()["total"]
    assert status == 400
    assert body["error"]["code"] == (code or "context_length_exceeded")
    assert stats["faults"] == {fault: 1} and stats["ok"] == 0

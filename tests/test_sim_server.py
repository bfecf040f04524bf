"""The simulator's routes, auth, model resolution, responses and counters over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from ultra_async.sim import SimServer

KEYS = {"secret-a": "key-a", "secret-b": "key-b"}
MODELS = {"DeepSeek-V3-0324": "DeepSeek-V3-0324", "DeepSeek-V3-0324-2": "DeepSeek-V3-0324"}
MESSAGES = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 40}]


async def openai(
    session: aiohttp.ClientSession, server: SimServer, secret: str | None, body: dict[str, Any]
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    url = f"{server.openai_base_url}/chat/completions"
    async with session.post(url, json=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), orjson.loads(await resp.read())


async def azure(
    session: aiohttp.ClientSession,
    server: SimServer,
    secret: str,
    deployment: str,
    *,
    api_version: str | None = "2024-12-01-preview",
) -> tuple[int, dict[str, str], Any]:
    url = f"{server.base_url}/openai/deployments/{deployment}/chat/completions"
    params = {"api-version": api_version} if api_version else {}
    body = {"messages": MESSAGES, "max_tokens": 100}
    async with session.post(url, json=body, headers={"api-key": secret}, params=params) as resp:
        return resp.status, dict(resp.headers), orjson.loads(await resp.read())


def assert_completion(body: Any, model: str, content: str) -> None:
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == model
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": content}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == 20  # 80 characters at ~4 per token
    assert usage["completion_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_both_routes_answer_with_completions_for_the_real_model() -> None:
    seen: list[tuple[str, int]] = []

    def responder(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        seen.append((model, len(messages)))
        return f"reply from {model}"

    async with (
        SimServer(keys=KEYS, models=MODELS, responder=responder) as server,
        aiohttp.ClientSession() as session,
    ):
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == server.base_url + "/v1"
        assert server.port > 0
        status, _, body = await azure(session, server, "secret-a", "DeepSeek-V3-0324-2")
        assert status == 200
        assert_completion(body, "DeepSeek-V3-0324", "reply from DeepSeek-V3-0324")
        request = {"model": "DeepSeek-V3-0324", "messages": MESSAGES, "temperature": 0.2}
        status, _, body = await openai(session, server, "secret-b", request)
        assert status == 200
        assert_completion(body, "DeepSeek-V3-0324", "reply from DeepSeek-V3-0324")
    # every deployment of a model plays the same real model
    assert seen == [("DeepSeek-V3-0324", 2), ("DeepSeek-V3-0324", 2)]


async def test_bad_or_missing_key_is_401_with_an_openai_error() -> None:
    async with SimServer(keys=KEYS) as server, aiohttp.ClientSession() as session:
        request = {"model": "m", "messages": MESSAGES}
        for secret in ("wrong", None, ""):
            status, _, body = await openai(session, server, secret, request)
            assert status == 401
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["code"] == "invalid_api_key"
            assert "wrong" not in body["error"]["message"]
        status, _, body = await azure(session, server, "secret-x", "m")
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        # an empty api-key header is no key
        status, _, _ = await azure(session, server, "", "m")
        assert status == 401
        stats = server.stats()
    assert stats["total"]["errors"] == {"401": 5}
    assert stats["keys"] == {}


async def test_revoked_key_is_always_401() -> None:
    async with (
        SimServer(keys=KEYS, revoked={"key-b"}) as server,
        aiohttp.ClientSession() as session,
    ):
        request = {"model": "m", "messages": MESSAGES}
        assert (await openai(session, server, "secret-a", request))[0] == 200
        for _ in range(3):
            status, _, body = await openai(session, server, "secret-b", request)
            assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        assert server.stats()["keys"]["key-b"]["errors"] == {"401": 3}


async def test_unknown_deployment_or_model_is_404_and_missing_api_version_400() -> None:
    async with (
        SimServer(keys=KEYS, models=MODELS) as server,
        aiohttp.ClientSession() as session,
    ):
        status, _, body = await azure(session, server, "secret-a", "DeepSeek-V3-0324-9")
        assert (status, body["error"]["code"]) == (404, "DeploymentNotFound")
        request = {"model": "gpt-9", "messages": MESSAGES}
        status, _, body = await openai(session, server, "secret-a", request)
        assert (status, body["error"]["code"]) == (404, "model_not_found")
        status, _, body = await azure(
            session, server, "secret-a", "DeepSeek-V3-0324", api_version=None
        )
        assert status == 400
        assert "api-version" in body["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'{"messages": []}', b'{"model": "m", "messages": "hi"}'],
)
async def test_malformed_requests_are_400(raw: bytes) -> None:
    async with SimServer(keys=KEYS) as server, aiohttp.ClientSession() as session:
        url = f"{server.openai_base_url}/chat/completions"
        headers = {"Authorization": "Bearer secret-a", "Content-Type": "application/json"}
        async with session.post(url, data=raw, headers=headers) as resp:
            assert resp.status == 400
            body = orjson.loads(await resp.read())
        assert body["error"]["type"] == "invalid_request_error"


async def test_open_server_accepts_any_key_and_model() -> None:
    async with SimServer() as server, aiohttp.ClientSession() as session:
        status, _, body = await openai(session, server, "anything", {"model": "x", "messages": []})
        assert status == 200
        assert body["choices"][0]["message"]["content"] == "TASK_COMPLETED"
        assert (await openai(session, server, None, {"model": "x", "messages": []}))[0] == 401
        assert set(server.stats()["keys"]) == {"anonymous"}


async def test_max_tokens_cuts_the_reply() -> None:
    def chatty(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        return "word " * 100

    async with (
        SimServer(keys=KEYS, responder=chatty) as server,
        aiohttp.ClientSession() as session,
    ):
        request = {"model": "m", "messages": MESSAGES, "max_tokens": 5}
        status, _, body = await openai(session, server, "secret-a", request)
        assert status == 200
        assert body["choices"][0]["finish_reason"] == "length"
        assert len(body["choices"][0]["message"]["content"]) == 20
        assert body["usage"]["completion_tokens"] == 5


async def test_counters_per_key_and_model_and_stats_route() -> None:
    async with (
        SimServer(keys=KEYS, models=MODELS) as server,
        aiohttp.ClientSession() as session,
    ):
        for _ in range(3):
            assert (await azure(session, server, "secret-a", "DeepSeek-V3-0324-2"))[0] == 200
        assert (await azure(session, server, "secret-b", "DeepSeek-V3-0324"))[0] == 200
        assert (await azure(session, server, "secret-b", "nope"))[0] == 404
        async with session.get(f"{server.base_url}/sim/stats") as resp:
            over_http = orjson.loads(await resp.read())
        stats = server.stats()
        assert over_http == orjson.loads(orjson.dumps(stats))
        total, keys, models = stats["total"], stats["keys"], stats["models"]
        assert (total["requests"], total["ok"], total["errors"]) == (5, 4, {"404": 1})
        assert (keys["key-a"]["requests"], keys["key-a"]["ok"]) == (3, 3)
        assert (keys["key-b"]["requests"], keys["key-b"]["ok"]) == (2, 1)
        assert models["DeepSeek-V3-0324-2"]["ok"] == 3
        assert models["DeepSeek-V3-0324"]["ok"] == 1
        assert "nope" not in models
        assert total["in_flight"] == 0 and total["peak_in_flight"] >= 1
        assert total["first_s"] <= total["last_s"]
        server.reset_stats()
        assert server.stats()["total"]["requests"] == 0
        assert server.stats()["keys"]["key-a"]["ok"] == 0


async def test_no_rate_limit_headers_without_rules_and_a_second_start_is_refused() -> None:
    async with SimServer(keys=KEYS) as server, aiohttp.ClientSession() as session:
        _, headers, _ = await openai(session, server, "secret-a", {"model": "m", "messages": []})
        assert "x-ratelimit-limit-requests" not in headers
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()

"""HTTP edge cases of the client and the retry loop, scripted with aioresponses (no real waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from pydantic import SecretStr

from ultra_async.config import RetryPolicy
from ultra_async.engine.client import ChatClient, classify_status, parse_retry_after
from ultra_async.engine.retry import Retrier, backoff_delay_s
from ultra_async.errors import InfraError, RequestError
from ultra_async.types import Route

OPENAI = Route("p", "openai", "http://127.0.0.1:9/v1", "k0", "K0")
AZURE = Route(
    "az",
    "azure",
    "http://127.0.0.1:9",
    "k0",
    "K0",
    deployment="dep-2",
    api_version="2024-12-01-preview",
)
KEY = SecretStr("sk-test-secret-123")
MESSAGES = [{"role": "user", "content": "hi"}]


def completion(content: str | None = "hello", reasoning: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


@pytest.fixture
async def client() -> AsyncIterator[ChatClient]:
    async with aiohttp.ClientSession() as session:
        yield ChatClient(session)


class FakeTime:
    """A clock that only moves when the retry loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def retrier(fake: FakeTime, **policy: Any) -> Retrier:
    return Retrier(RetryPolicy(**policy), sleep=fake.sleep, clock=fake.clock, rand=lambda: 0.5)


async def test_openai_route_and_parsing(client: ChatClient) -> None:
    with aioresponses() as mock:
        mock.post(OPENAI.url, payload=completion())
        response, _ = await client.complete(OPENAI, "m", KEY, MESSAGES, max_tokens=5)
        (call,) = mock.requests[("POST", aiohttp.client.URL(OPENAI.url))]
    assert response.content == "hello"
    assert (response.input_tokens, response.output_tokens) == (7, 3)
    assert call.kwargs["headers"]["Authorization"] == "Bearer sk-test-secret-123"


async def test_azure_route_uses_api_key_header(client: ChatClient) -> None:
    assert (
        AZURE.url
        == "http://127.0.0.1:9/openai/deployments/dep-2/chat/completions?api-version=2024-12-01-preview"
    )
    with aioresponses() as mock:
        mock.post(AZURE.url, payload=completion())
        await client.complete(AZURE, "dep-2", KEY, MESSAGES)
        ((_, calls),) = mock.requests.items()
    assert calls[0].kwargs["headers"]["api-key"] == "sk-test-secret-123"
    assert "Authorization" not in calls[0].kwargs["headers"]


async def test_reasoning_content_used_when_content_empty(client: ChatClient) -> None:
    with aioresponses() as mock:
        mock.post(OPENAI.url, payload=completion(content="", reasoning="thinking TASK_COMPLETED"))
        response, _ = await client.complete(OPENAI, "m", KEY, MESSAGES)
    assert response.content == "thinking TASK_COMPLETED"


async def test_429_with_retry_after_then_200_retries_once_after_stated_delay(
    client: ChatClient,
) -> None:
    fake = FakeTime()
    with aioresponses() as mock:
        mock.post(
            OPENAI.url,
            status=429,
            headers={"Retry-After": "7"},
            payload={"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
        )
        mock.post(OPENAI.url, payload=completion())
        response = await retrier(fake).call(lambda: client.complete(OPENAI, "m", KEY, MESSAGES))
        calls = sum(len(v) for v in mock.requests.values())
    assert response[0].content == "hello"
    assert calls == 2
    assert fake.sleeps == [7.0]  # the server's delay, not the (shorter) jittered backoff


async def test_500s_exhausted_become_infra_error(client: ChatClient) -> None:
    fake = FakeTime()
    with aioresponses() as mock:
        for _ in range(4):
            mock.post(OPENAI.url, status=500, body=b"oops")
        with pytest.raises(InfraError) as info:
            await retrier(fake, max_attempts=4).call(
                lambda: client.complete(OPENAI, "m", KEY, MESSAGES)
            )
        calls = sum(len(v) for v in mock.requests.values())
    assert calls == 4 and len(fake.sleeps) == 3
    assert "gave up after 4 attempts" in info.value.reason
    assert not info.value.fatal


async def test_401_is_fatal_and_not_retried(client: ChatClient) -> None:
    fake = FakeTime()
    with aioresponses() as mock:
        mock.post(
            OPENAI.url,
            status=401,
            payload={
                "error": {
                    "message": "Incorrect API key provided: sk-test-secret-123",
                    "code": "invalid_api_key",
                }
            },
        )
        with pytest.raises(InfraError) as info:
            await retrier(fake).call(lambda: client.complete(OPENAI, "m", KEY, MESSAGES))
        calls = sum(len(v) for v in mock.requests.values())
    assert calls == 1 and fake.sleeps == []
    assert info.value.fatal and info.value.status == 401
    # a provider echoing the key back does not put it in our error
    assert "sk-test-secret-123" not in info.value.reason


async def test_content_filter_is_rejected_for_the_request_only(client: ChatClient) -> None:
    with aioresponses() as mock:
        mock.post(
            OPENAI.url,
            status=400,
            payload={"error": {"message": "filtered", "code": "content_filter"}},
        )
        with pytest.raises(RequestError) as info:
            await client.complete(OPENAI, "m", KEY, MESSAGES)
    assert info.value.kind == "rejected" and not info.value.route_fatal
    assert info.value.code == "content_filter" and info.value.status == 400


async def test_quota_exhausted_is_fatal_for_the_route(client: ChatClient) -> None:
    with aioresponses() as mock:
        mock.post(
            OPENAI.url,
            status=429,
            payload={"error": {"message": "quota", "code": "insufficient_quota"}},
        )
        with pytest.raises(RequestError) as info:
            await client.complete(OPENAI, "m", KEY, MESSAGES)
    assert info.value.kind == "fatal" and info.value.route_fatal


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"choices": []}', b'{"choices": [{"message": {"content": 5}}]}', b""]
)
async def test_malformed_json_is_transient(client: ChatClient, body: bytes) -> None:
    with aioresponses() as mock:
        mock.post(OPENAI.url, status=200, body=body)
        with pytest.raises(RequestError) as info:
            await client.complete(OPENAI, "m", KEY, MESSAGES)
    assert info.value.kind == "transient"


async def test_timeout_is_transient_and_retried(client: ChatClient) -> None:
    fake = FakeTime()
    with aioresponses() as mock:
        mock.post(OPENAI.url, exception=TimeoutError())
        mock.post(OPENAI.url, payload=completion())
        response, _ = await retrier(fake).call(lambda: client.complete(OPENAI, "m", KEY, MESSAGES))
    assert response.content == "hello" and len(fake.sleeps) == 1


async def test_connection_error_is_transient(client: ChatClient) -> None:
    with aioresponses() as mock:
        mock.post(OPENAI.url, exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(RequestError) as info:
            await client.complete(OPENAI, "m", KEY, MESSAGES)
    assert info.value.kind == "transient"


async def test_deadline_stops_retrying() -> None:
    fake = FakeTime()

    async def always_429() -> None:
        raise RequestError("429", kind="rate_limit", status=429, retry_after_s=30)

    with pytest.raises(InfraError, match="deadline"):
        await retrier(fake, max_attempts=10).call(always_429, deadline=50.0)
    assert fake.sleeps == [30.0]


def test_full_jitter_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    assert backoff_delay_s(1, policy, lambda: 1.0) == 1
    assert backoff_delay_s(3, policy, lambda: 1.0) == 4
    assert backoff_delay_s(10, policy, lambda: 1.0) == 8
    assert backoff_delay_s(10, policy, lambda: 0.0) == 0


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, None, "rate_limit"),
        (429, "insufficient_quota", "fatal"),
        (500, None, "transient"),
        (503, None, "transient"),
        (408, None, "transient"),
        (401, None, "fatal"),
        (403, None, "fatal"),
        (404, None, "fatal"),
        (400, "content_filter", "rejected"),
        (422, None, "rejected"),
    ],
)
def test_classify_status(status: int, code: str | None, kind: str) -> None:
    assert classify_status(status, code) == kind


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "2"}) == 1.5
    assert (
        parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0)
        == 10.0
    )
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_client_timeout_from_config() -> None:
    from ultra_async.config import Timeouts
    from ultra_async.engine.client import client_timeout

    short_read = client_timeout(Timeouts(connect_s=3, read_s=20, total_s=60))
    assert (short_read.sock_connect, short_read.sock_read, short_read.total) == (3, 20, 60)
    # a read timeout that cannot fire before the total is not armed on every chunk
    assert client_timeout(Timeouts(connect_s=3, read_s=60, total_s=60)).sock_read is None

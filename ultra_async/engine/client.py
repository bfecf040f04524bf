"""HTTP calls to OpenAI-compatible and Azure chat-completion routes, and error classification.

Every failure becomes a RequestError whose `kind` is the retry decision:
rate_limit (429), transient (5xx, timeouts, dropped connections, malformed bodies),
fatal (the route cannot work: 401/403/404, quota exhausted) or rejected (this request can
never succeed: 400 content filter or context length, 413, 422 and other 4xx).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr
from yarl import URL

from .._redact import redact
from ..config import Timeouts
from ..errors import RequestError
from ..types import ChatResponse, Message, Route
from .deadlines import Deadlines
from .headers import RateLimitHeaders, parse_rate_limit_headers

__all__ = ["ChatClient", "Endpoint", "RateLimitHeaders", "classify_status", "parse_completion"]

_TRANSIENT_STATUS = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})
#: statuses that say the route (key, deployment, model) cannot work, not just this request
_ROUTE_FATAL_STATUS = frozenset({401, 403, 404})


def client_timeout(timeouts: Timeouts, *, total: bool = True) -> aiohttp.ClientTimeout:
    """Connect, per-read and whole-request timeouts: no socket can hang a test forever.

    A read timeout not shorter than the total can never fire first, so it is left out: it
    would only cost a timer reset on every chunk received. `total=False` leaves the total to
    the caller (see `transport_timeout`).
    """
    sock_read = timeouts.read_s if timeouts.read_s < timeouts.total_s else None
    return aiohttp.ClientTimeout(
        total=timeouts.total_s if total else None,
        sock_connect=timeouts.connect_s,
        sock_read=sock_read,
    )


def transport_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """`client_timeout` without the whole-request total, which the engine keeps itself.

    aiohttp arms a timer of its own for the total of every request (a heap entry, a task
    lookup, a cancellation); the engine puts every request's total on one timer instead
    (`ChatClient.send(total_s=...)`), as it does for test deadlines.
    """
    return client_timeout(timeouts, total=False)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


#: characters of an error message kept; the message is redacted first, then cut
MESSAGE_CHARS = 300
#: bytes of an error body read for its message: enough for any real one, bounded for a huge one
_BODY_BYTES = 16384


def _error_fields(body: bytes, secret: str = "") -> tuple[str, str | None]:
    """The message and code of an OpenAI/Azure error body, tolerating anything.

    Providers sometimes quote the key back; it is removed (whole, or any 8 characters of it)
    before the message is cut, so a cut can never leave a piece of the key behind.
    """

    def clean(text: str, limit: int) -> str:
        if secret:
            text = text.replace(secret, "[redacted]")
        return redact(text)[:limit]

    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = clean(body[:_BODY_BYTES].decode("utf-8", "replace").strip(), 200)
        return text or "(empty body)", None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = clean(str(error.get("message") or ""), MESSAGE_CHARS)
        code = error.get("code") or error.get("type")
        code_text = clean(str(code), 100) if code is not None else None
        return message or "(no message)", code_text
    return clean(str(data)[:_BODY_BYTES], 200), None


def classify_status(status: int, code: str | None) -> str:
    """Retry decision for an HTTP error status."""
    if status == 429:
        return "fatal" if code == "insufficient_quota" else "rate_limit"
    if status in _TRANSIENT_STATUS or status >= 500:
        return "transient"
    if status in _ROUTE_FATAL_STATUS:
        return "fatal"
    return "rejected"


def parse_completion(body: bytes, latency_s: float) -> ChatResponse:
    """`choices[0].message` (content, else reasoning_content) and `usage` of a 200 response."""
    try:
        data = orjson.loads(body)
        message = data["choices"][0]["message"]
        content = message.get("content") or message.get("reasoning_content") or ""
        if not isinstance(content, str):
            raise TypeError("content is not a string")
        usage = data.get("usage") or {}
        return ChatResponse(
            content=content,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=data["choices"][0].get("finish_reason"),
            latency_s=latency_s,
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise RequestError(
            f"malformed response body ({len(body)} bytes)", kind="transient", status=200
        ) from None


class Endpoint:
    """Where one shard's requests go, built once: the URL, the headers with the key, the model.

    Its repr never shows the headers: they hold the key.
    """

    __slots__ = ("api_model", "headers", "key", "route", "url")

    def __init__(self, route: Route, api_model: str, key: SecretStr) -> None:
        secret = key.get_secret_value()
        if not secret:  # a keyless endpoint (a local vLLM or Ollama server)
            headers = {"Content-Type": "application/json"}
        elif route.kind == "azure":
            headers = {"api-key": secret, "Content-Type": "application/json"}
        else:
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        self.route = route
        self.api_model = api_model
        self.key = key
        self.headers: Mapping[str, str] = headers
        self.url = URL(route.url)

    def __repr__(self) -> str:
        return f"Endpoint({self.route.provider!r}, {self.api_model!r})"


class ChatClient:
    """Sends one chat-completion request on a route; raises RequestError on any failure."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._deadlines = Deadlines()

    def close(self) -> None:
        """Stop the timer of the requests' totals (the session is closing)."""
        self._deadlines.close()

    async def complete(
        self,
        route: Route,
        api_model: str,
        key: SecretStr,
        messages: Sequence[Message],
        *,
        request_timeout: aiohttp.ClientTimeout | None = None,
        **params: Any,
    ) -> tuple[ChatResponse, RateLimitHeaders]:
        return await self.send(Endpoint(route, api_model, key), messages, params, request_timeout)

    async def send(
        self,
        endpoint: Endpoint,
        messages: Sequence[Message],
        params: Mapping[str, Any],
        request_timeout: aiohttp.ClientTimeout | None = None,
        total_s: float | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> tuple[ChatResponse, RateLimitHeaders]:
        """`complete` for an endpoint built once (the engine's path: one per shard).

        `total_s` bounds the whole request on the client's one timer (see `transport_timeout`);
        a request over it fails as a transient "request timed out", like aiohttp's own total.
        `task` is the task sending it (the current one by default).
        """
        if type(messages) is not list:
            messages = list(messages)
        payload = orjson.dumps({"model": endpoint.api_model, "messages": messages, **params})
        started = time.monotonic()
        deadline = self._deadlines.start(total_s, task) if total_s is not None else None
        expired = False
        try:
            try:
                async with self._session.post(
                    endpoint.url, data=payload, headers=endpoint.headers, timeout=request_timeout
                ) as response:
                    body = await response.read()
                    status = response.status
                    resp_headers = response.headers
            finally:
                if deadline is not None:
                    expired = self._deadlines.finish(deadline)
        except asyncio.CancelledError:
            if not expired:
                raise
            raise RequestError("request timed out", kind="transient") from None
        except TimeoutError:
            raise RequestError("request timed out", kind="transient") from None
        except aiohttp.ClientError as exc:
            # the text carries the URL; a header error can quote the key, so it is redacted
            secret = endpoint.key.get_secret_value()
            text = str(exc).replace(secret, "[redacted]") if secret else str(exc)
            raise RequestError(
                f"connection error: {type(exc).__name__}: {redact(text)[:MESSAGE_CHARS]}",
                kind="transient",
            ) from None
        latency_s = time.monotonic() - started
        limits = parse_rate_limit_headers(resp_headers)
        if status == 200:
            return parse_completion(body, latency_s), limits
        route = endpoint.route
        message, code = _error_fields(body, endpoint.key.get_secret_value())
        kind = classify_status(status, code)
        raise RequestError(
            f"HTTP {status} from {route.provider}"
            f"{'/' + route.deployment if route.deployment else ''}: {message}",
            kind=kind,
            status=status,
            retry_after_s=parse_retry_after(resp_headers) if status in (429, 503) else None,
            code=code,
            detail=message,
            headers=limits,
        )

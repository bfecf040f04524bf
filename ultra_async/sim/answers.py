"""What a request that found its route gets: a forced status, a 429, an injected fault, a reply.

In that order: a rule's forced status, the rate limits (a 429 worded as OpenAI or Azure would),
a fault drawn for the route, the latency, then the responder's reply, with a token limit's charge
settled to the tokens used.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from . import protocol
from .buckets import RateLimiter
from .counters import Counter, Stats
from .faults import FaultPicker
from .responders import Responder
from .routing import SimRoute


class Answerer:
    """Answers routed requests with the server's limits, faults, latency and responder.

    `limiter` is replaced by the server when it starts, so that the buckets read the loop's
    clock; `sleep` is the server's, which `close()` can cut short.
    """

    def __init__(
        self,
        *,
        stats: Stats,
        limiter: RateLimiter,
        faults: FaultPicker,
        responder: Responder,
        seed: int,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.limiter = limiter
        self._stats = stats
        self._faults = faults
        self._responder = responder
        self._latency_rng = random.Random(f"{seed}:latency")
        self._ids = itertools.count(1)
        self._sleep = sleep

    async def answer(
        self,
        request: web.Request,
        route: SimRoute,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        azure: bool,
    ) -> web.StreamResponse:
        """The response to a routed request; `azure` words a refusal and its headers as Azure."""
        counters = (self._stats.total, route.key, route.model)
        if route.fault is not None and route.fault.status is not None:
            status = route.fault.status
            forced = {"Retry-After": "1", "retry-after-ms": "1000"} if status == 429 else None
            return reply(status, protocol.status_body(status), counters, forced)
        headers: dict[str, str] | None = None
        content: str | None = None
        prompt_tokens = protocol.estimate_tokens(protocol.prompt_chars(messages))
        max_tokens = protocol.max_tokens_of(body)
        charge = 0
        if route.token_buckets:
            # a token limit charges prompt + max_tokens at admission (the reply's own length
            # when no max_tokens is set), then settles to the usage when answering
            content = self._responder(route.real_model, messages, body)
            allowance = max_tokens
            if allowance is None:
                allowance = protocol.cut_reply(content, None)[2]
            charge = prompt_tokens + allowance
        if route.buckets or route.token_buckets:
            wait_s, by_tokens = self.limiter.admit(route.buckets, route.token_buckets, charge)
            if wait_s > 0.0:
                for c in counters:
                    c.rate_limited += 1
                return self._refuse(request, route, wait_s, by_tokens, charge, azure)
            headers = route.limit_headers(azure)
        fault = self._faults.pick(route.edges) if route.edges else None
        if fault is not None:
            for c in counters:
                c.fault(fault)
            if fault == "rate_limit" and route.fault is not None:
                for c in counters:
                    c.rate_limited += 1
                retry_headers = protocol.rate_limit_headers(
                    route.fault.retry_after_s, route.limit_rpm
                )
                wait_ms = int(retry_headers["retry-after-ms"])
                return reply(429, protocol.rate_limited(wait_ms), (), retry_headers)
            if fault == "error_500":
                return reply(500, protocol.SERVER_ERROR, ())
            if fault == "error_503":
                return reply(503, protocol.SERVICE_UNAVAILABLE, ())
            if fault == "drop_connection":
                # closing the socket mid-request is what a crashed backend or proxy looks like;
                # aiohttp discards the response returned below
                if request.transport is not None:
                    request.transport.close()
                return web.Response()
            if fault == "hang" and route.fault is not None:
                await self._sleep(route.fault.hang_s)
            if fault == "content_filter":
                return reply(400, protocol.CONTENT_FILTERED, (), headers)
            if fault == "context_length":
                return reply(400, protocol.context_length_exceeded(prompt_tokens), (), headers)
        if route.latency is not None:
            await self._sleep(route.latency.sample_s(self._latency_rng))
        if content is None:
            content = self._responder(route.real_model, messages, body)
        payload = protocol.completion_body(
            id_=f"chatcmpl-sim{next(self._ids)}",
            created=int(time.time()),
            model=route.real_model,
            content=content,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
        )
        used = prompt_tokens + protocol.cut_reply(content, max_tokens)[2]
        if route.token_buckets:
            self.limiter.settle(route.token_buckets, charge, used)
        if fault == "malformed_json":
            # a body cut off mid-stream: valid HTTP, status 200, unparseable JSON
            payload = payload[: len(payload) // 2]
        else:
            for c in counters:
                c.ok += 1
                c.tokens += used
        return web.Response(body=payload, content_type=protocol.JSON, headers=headers)

    def _refuse(
        self,
        request: web.Request,
        route: SimRoute,
        wait_s: float,
        by_tokens: bool,
        charge: int,
        azure: bool,
    ) -> web.Response:
        """429 for an empty bucket, worded as OpenAI or Azure would, with when to come back."""
        headers = protocol.rate_limit_headers(wait_s, "" if azure else route.limit_rpm)
        if route.token_buckets:
            headers["x-ratelimit-remaining-tokens"] = str(
                max(0, math.floor(min(b.tokens for b in route.token_buckets)))
            )
        wait_ms = int(headers["retry-after-ms"])
        if azure:
            version = request.query.get("api-version", "")
            body = protocol.azure_rate_limited(version, by_tokens, wait_s)
        elif by_tokens:
            body = protocol.tokens_rate_limited(route.limit_tpm, charge, wait_s)
        else:
            body = protocol.rate_limited(wait_ms)
        return reply(429, body, (), headers)


def reply(
    status: int,
    body: bytes,
    counters: Sequence[Counter],
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON response with `status` and `body`, counted by that status in each of `counters`."""
    for c in counters:
        c.error(status)
    return web.Response(status=status, body=body, content_type=protocol.JSON, headers=headers)

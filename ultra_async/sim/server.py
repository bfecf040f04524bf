"""The simulator's HTTP server: OpenAI and Azure chat-completion routes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from ..types import ApiKind
from . import protocol
from .buckets import Clock, RateLimiter, RateRule
from .counters import Counter, Stats
from .faults import FaultPicker, FaultRule
from .latency import Latency
from .responders import Responder, default_responder
from .routing import Router, SimRoute

#: the key name for requests when the server accepts any key (`keys=None`)
ANONYMOUS = "anonymous"


class SimServer:
    """An OpenAI/Azure-compatible chat server in the current event loop; an async context manager.

    `keys` maps secret → key name (None accepts any non-empty key as "anonymous"); `revoked` key
    names always get 401. `models` maps a requested model or deployment → the real model the
    responder plays (None accepts any name as itself). `rules` are server-side rate limits,
    `faults` fault-injection rules (first match applies). `latency` delays every answer;
    `model_latency` overrides it per real model. `clock` (default: the loop's) drives the
    buckets and counters; tests pass a fake one to control refill exactly.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Mapping[str, str] | None = None,
        revoked: Collection[str] = (),
        models: Mapping[str, str] | None = None,
        rules: Sequence[RateRule] = (),
        faults: Sequence[FaultRule] = (),
        latency: Latency | None = None,
        model_latency: Mapping[str, Latency] | None = None,
        responder: Responder = default_responder,
        seed: int = 0,
        clock: Clock | None = None,
        shutdown_timeout_s: float = 0.2,
    ) -> None:
        if shutdown_timeout_s <= 0:
            raise ValueError("shutdown_timeout_s must be > 0")
        self.host = host
        self._port = port
        self._keys = dict(keys) if keys is not None else None
        self._revoked = frozenset(revoked)
        self._rules = tuple(rules)
        self._faults = FaultPicker(faults, seed)
        self._latency = latency
        self._model_latency = dict(model_latency or {})
        self._models = models
        self._responder = responder
        self._latency_rng = random.Random(f"{seed}:latency")
        self._shutdown_timeout_s = shutdown_timeout_s
        self._stats = Stats()
        self._clock_arg = clock
        # replaced by the loop's clock in start(); buckets must share the clock they are read by
        self._clock: Clock = clock or time.monotonic
        self._limiter = RateLimiter(self._rules, self._clock)
        self._router = self._make_router()
        self._sleeping: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen; after this `base_url` is valid."""
        if self._runner is not None:
            raise RuntimeError("SimServer is already running")
        self._clock = self._clock_arg or asyncio.get_running_loop().time
        self._limiter = RateLimiter(self._rules, self._clock)
        self._router = self._make_router()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_get("/sim/stats", self._stats_handler)
        # no access log: one log line per request would cost more than answering it;
        # handler_cancellation stops work for clients that gave up (timeouts, hangs)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def close(self) -> None:
        """Stop at once: hanging and delayed requests are cancelled, their connections closed."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._sleeping):
            task.cancel()
        await runner.cleanup()

    # -- public surface --------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with port 0)."""
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`: the Azure endpoint."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`: the OpenAI base URL."""
        return f"{self.base_url}/v1"

    def base_url_for(self, kind: ApiKind) -> str:
        """The base URL a route of this kind should use to reach the simulator."""
        return self.base_url if kind == "azure" else self.openai_base_url

    def stats(self) -> dict[str, Any]:
        """Counters as plain data: `total`, and per key name and per requested model."""
        return self._stats.as_dict()

    def reset_stats(self) -> None:
        """Zero the counters (e.g. after a warm-up); rate-limit buckets are left as they are."""
        self._stats.reset()

    # -- handlers --------------------------------------------------------------------------

    async def _stats_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type=protocol.JSON)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        secret = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        return await self._serve(request, secret, None)

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(
            request, request.headers.get("api-key", ""), request.match_info["deployment"]
        )

    async def _serve(
        self, request: web.Request, secret: str, deployment: str | None
    ) -> web.StreamResponse:
        now_s = self._clock()
        total = self._stats.total
        total.begin(now_s)
        try:
            if deployment is not None and "api-version" not in request.query:
                return _reply(400, protocol.MISSING_API_VERSION, (total,))
            keys = self._keys
            name = keys.get(secret) if keys is not None else (ANONYMOUS if secret else None)
            if name is None:
                return _reply(401, protocol.INVALID_API_KEY, (total,))
            key = self._stats.key(name)
            key.begin(now_s)
            try:
                return await self._authorized(request, name, key, deployment, now_s)
            finally:
                key.end()
        finally:
            total.end()

    async def _authorized(
        self, request: web.Request, name: str, key: Counter, deployment: str | None, now_s: float
    ) -> web.StreamResponse:
        total = self._stats.total
        if name in self._revoked:
            return _reply(401, protocol.INVALID_API_KEY, (total, key))
        parsed = protocol.parse_chat(await request.read(), deployment)
        if isinstance(parsed, str):
            return _reply(400, protocol.bad_request(parsed), (total, key))
        requested, messages, body = parsed
        route = self._router.get(name, requested)
        if route is None:
            if deployment is not None:
                return _reply(404, protocol.deployment_not_found(requested), (total, key))
            return _reply(404, protocol.model_not_found(requested), (total, key))
        route.model.begin(now_s)
        try:
            return await self._answer(request, route, body, messages, deployment is not None)
        finally:
            route.model.end()

    async def _answer(
        self,
        request: web.Request,
        route: SimRoute,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        azure: bool,
    ) -> web.StreamResponse:
        counters = (self._stats.total, route.key, route.model)
        if route.fault is not None and route.fault.status is not None:
            status = route.fault.status
            forced = {"Retry-After": "1", "retry-after-ms": "1000"} if status == 429 else None
            return _reply(status, protocol.status_body(status), counters, forced)
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
            wait_s, by_tokens = self._limiter.admit(route.buckets, route.token_buckets, charge)
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
                return _reply(429, protocol.rate_limited(wait_ms), (), retry_headers)
            if fault == "error_500":
                return _reply(500, protocol.SERVER_ERROR, ())
            if fault == "error_503":
                return _reply(503, protocol.SERVICE_UNAVAILABLE, ())
            if fault == "drop_connection":
                # closing the socket mid-request is what a crashed backend or proxy looks like;
                # aiohttp discards the response returned below
                if request.transport is not None:
                    request.transport.close()
                return web.Response()
            if fault == "hang" and route.fault is not None:
                await self._sleep(route.fault.hang_s)
            if fault == "content_filter":
                return _reply(400, protocol.CONTENT_FILTERED, (), headers)
            if fault == "context_length":
                return _reply(400, protocol.context_length_exceeded(prompt_tokens), (), headers)
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
            self._limiter.settle(route.token_buckets, charge, used)
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
        return _reply(429, body, (), headers)

    # -- helpers ---------------------------------------------------------------------------

    def _make_router(self) -> Router:
        return Router(
            models=self._models,
            limiter=self._limiter,
            faults=self._faults,
            latency=self._latency,
            model_latency=self._model_latency,
            stats=self._stats,
        )

    async def _sleep(self, delay_s: float) -> None:
        """Sleep in a way `close()` can cut short."""
        if delay_s <= 0:
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - handlers always run in a task
            await asyncio.sleep(delay_s)
            return
        self._sleeping.add(task)
        try:
            await asyncio.sleep(delay_s)
        finally:
            self._sleeping.discard(task)


def _reply(
    status: int,
    body: bytes,
    counters: Sequence[Counter],
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    for c in counters:
        c.error(status)
    return web.Response(status=status, body=body, content_type=protocol.JSON, headers=headers)

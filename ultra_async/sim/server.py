"""The simulator's HTTP server: OpenAI and Azure chat-completion routes on 127.0.0.1.

Here a request's key is checked and its route found; `answers.py` decides what it gets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from ..types import ApiKind
from . import protocol
from .answers import Answerer, reply
from .buckets import Clock, RateLimiter, RateRule
from .counters import Counter, Stats
from .faults import FaultPicker, FaultRule
from .latency import Latency
from .responders import Responder, default_responder
from .routing import Router

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
        self._shutdown_timeout_s = shutdown_timeout_s
        self._stats = Stats()
        self._clock_arg = clock
        # replaced by the loop's clock in start(); buckets must share the clock they are read by
        self._clock: Clock = clock or time.monotonic
        self._limiter = RateLimiter(self._rules, self._clock)
        self._router = self._make_router()
        self._sleeping: set[asyncio.Task[Any]] = set()
        self._answerer = Answerer(
            stats=self._stats,
            limiter=self._limiter,
            faults=self._faults,
            responder=responder,
            seed=seed,
            sleep=self._sleep,
        )
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
        self._answerer.limiter = self._limiter
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
                return reply(400, protocol.MISSING_API_VERSION, (total,))
            keys = self._keys
            name = keys.get(secret) if keys is not None else (ANONYMOUS if secret else None)
            if name is None:
                return reply(401, protocol.INVALID_API_KEY, (total,))
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
            return reply(401, protocol.INVALID_API_KEY, (total, key))
        parsed = protocol.parse_chat(await request.read(), deployment)
        if isinstance(parsed, str):
            return reply(400, protocol.bad_request(parsed), (total, key))
        requested, messages, body = parsed
        route = self._router.get(name, requested)
        if route is None:
            if deployment is not None:
                return reply(404, protocol.deployment_not_found(requested), (total, key))
            return reply(404, protocol.model_not_found(requested), (total, key))
        route.model.begin(now_s)
        try:
            return await self._answerer.answer(
                request, route, body, messages, deployment is not None
            )
        finally:
            route.model.end()

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

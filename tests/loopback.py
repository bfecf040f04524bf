"""A small real HTTP server on 127.0.0.1 that records what the engine does to it.

The engine's end-to-end tests use it to observe in-flight requests and per-key request times
directly; the full simulator (ultra_async.sim) is tested separately.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from aiohttp import web


@dataclass
class Loopback:
    """Per-key request log and in-flight peaks; `revoked` keys get 401, `limit_qps` keys get 429."""

    latency_s: float = 0.0
    revoked: set[str] = field(default_factory=set)
    #: keys answered with a 500 whose body quotes the key back, as careless providers do
    failing: set[str] = field(default_factory=set)
    limit_qps: dict[str, tuple[float, float]] = field(default_factory=dict)  # key → (qps, burst)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    base_url: str = ""
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _admit(self, key: str, now: float) -> float | None:
        """Token bucket per limited key; the wait in seconds when empty, None when admitted."""
        if key not in self.limit_qps:
            return None
        qps, burst = self.limit_qps[key]
        tokens, last = self._tokens.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * qps)
        if tokens < 1:
            self._tokens[key] = (tokens, now)
            return (1 - tokens) / qps
        self._tokens[key] = (tokens - 1, now)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ") or request.headers.get("api-key", "")
        body = orjson.loads(await request.read())
        group = f"{key}|{body.get('model')}"
        now = time.monotonic()
        if key in self.revoked:
            self.statuses[401] += 1
            return web.json_response(
                {
                    "error": {
                        "message": f"Incorrect API key provided: {key}",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        if key in self.failing:
            self.statuses[500] += 1
            return web.Response(status=500, text=f"internal error while serving key={key}")
        wait = self._admit(key, now)
        if wait is not None:
            self.statuses[429] += 1
            return web.json_response(
                {"error": {"message": "rate limited", "code": "rate_limit_exceeded"}},
                status=429,
                headers={"retry-after-ms": str(int(wait * 1000) + 1)},
            )
        self.times[key].append(now)
        self.in_flight[group] += 1
        self.peak[group] = max(self.peak[group], self.in_flight[group])
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight[group] -= 1
        self.statuses[200] += 1
        return web.Response(
            body=orjson.dumps(
                {
                    "choices": [
                        {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                }
            ),
            content_type="application/json",
        )


@asynccontextmanager
async def loopback_server(server: Loopback) -> AsyncIterator[Loopback]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()

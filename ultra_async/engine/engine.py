"""The engine: shard workers in one event loop, work stealing, per-test deadlines, shutdown.

Each test runs under its deadline (`deadlines.py`); a cancellation from outside (shutdown)
always wins over it. A spending cap (`max_cost`) stops handing out tests once reached.

Workers never touch statistics: every finished test becomes a TestResult handed to the
`on_result` coroutine (the aggregator's `submit`), which applies backpressure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from ..config import Config
from ..logs import ensure_configured
from ..planner import Plan, build_shards
from ..types import Evaluate, TestResult
from .client import ChatClient
from .collector import young_threshold
from .recording import Recording
from .shards import ModelPool, ShardState, build_states, run_keys
from .summary import RunSummary
from .test_run import CheckOutcome, TestRunner

log = structlog.get_logger("ultra_async.engine.engine")

OnResult = Callable[[TestResult], Awaitable[None]]
__all__ = ["Engine", "RunSummary"]


class Engine:
    """Runs plans: one event loop, every shard at its own concurrency and request rate.

    Use as `async with Engine(config) as engine: summary = await engine.run(plan, evaluate)`.
    `keys` maps key names to secrets (default: read from the environment named in
    providers.yaml); `base_urls` maps provider names to a base URL that replaces the
    configured one (the simulator uses this). `max_cost` stops taking new tests once the
    responses' cost (from the models' `price`) reaches it; tests already running finish, and
    the ones not started are left for the next run.
    """

    def __init__(
        self,
        config: Config,
        *,
        keys: Mapping[str, SecretStr] | None = None,
        base_urls: Mapping[str, str] | None = None,
        grace_s: float | None = None,
        tag_requests: bool = False,
        recording: Recording | None = None,
        max_cost: float | None = None,
    ) -> None:
        if max_cost is not None and not max_cost > 0:
            raise ValueError("max_cost must be > 0")
        self.config = config
        self._given_keys = dict(keys) if keys is not None else None
        self._base_urls = dict(base_urls or {})
        self.grace_s = config.data.defaults.grace_s if grace_s is None else grace_s
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, SecretStr] = {}
        self._states: list[ShardState] = []
        self._stop = asyncio.Event()
        self._running = False
        #: send each request's work item id as the `user` field (the embedded simulator reads it)
        self.tag_requests = tag_requests
        #: transcripts and the response cache (engine/recording.py); None records nothing
        self._recording = recording
        #: stop taking new tests once the run's responses cost this much (None: no cap)
        self.max_cost = max_cost

    async def __aenter__(self) -> Engine:
        total_workers = sum(
            int(s.workers.max) for m in self.config.models for s in build_shards(self.config, m)
        )
        connector = aiohttp.TCPConnector(limit=min(total_workers, 4096), limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
        self._client = ChatClient(self._session)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request_stop(self) -> None:
        """Stop taking new tests; in-flight tests get `grace_s` to finish, then are cancelled."""
        if not self._stop.is_set():
            log.info("stop_requested", grace_s=self.grace_s)
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def in_flight(self) -> int:
        """Tests running now, over every shard."""
        return sum(state.in_flight for state in self._states)

    def snapshot(self) -> list[dict[str, Any]]:
        """Live per-shard counters (for progress displays)."""
        return [s.snapshot() for s in self._states]

    async def run(
        self,
        plan: Plan,
        evaluate: Evaluate,
        *,
        on_result: OnResult | None = None,
        check_outcome: CheckOutcome | None = None,
    ) -> RunSummary:
        """Run every item of `plan` through `evaluate`; hand each TestResult to `on_result`.

        `check_outcome` says why a returned object is not a valid outcome; such a test, like
        one whose `evaluate` raised, ends as an `evaluate_error`.
        """
        if self._session is None:
            raise RuntimeError("use `async with Engine(config) as engine:` before run()")
        if self._running:
            raise RuntimeError("this engine is already running a plan")
        self._running = True
        self._tests = TestRunner(
            tag_requests=self.tag_requests, recording=self._recording, check=check_outcome
        )
        try:
            with young_threshold():
                return await self._run(plan, evaluate, on_result)
        finally:
            self._running = False
            self._tests.close()
            # a stop request ends one run; the next run starts afresh
            self._stop = asyncio.Event()

    async def results(self, plan: Plan, evaluate: Evaluate) -> AsyncIterator[TestResult]:
        """Run `plan` and yield each TestResult as it finishes."""
        queue: asyncio.Queue[TestResult | None] = asyncio.Queue(maxsize=256)

        async def runner() -> None:
            try:
                await self.run(plan, evaluate, on_result=queue.put)
            finally:
                await queue.put(None)

        task = asyncio.create_task(runner())
        try:
            while (result := await queue.get()) is not None:
                yield result
            await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _run(self, plan: Plan, evaluate: Evaluate, on_result: OnResult | None) -> RunSummary:
        started = time.monotonic()
        ensure_configured()  # never structlog's default: it prints tracebacks with locals
        self._keys = run_keys(self.config, plan, self._given_keys)
        self._states = build_states(
            plan, self.config, client=self._client, keys=self._keys, base_urls=self._base_urls
        )
        by_model: dict[str, list[ShardState]] = {}
        for state in self._states:
            by_model.setdefault(state.shard.model, []).append(state)
        pools = {model: ModelPool(states) for model, states in by_model.items()}

        summary = RunSummary(planned=plan.total)
        emit = on_result or _discard

        tasks = [
            asyncio.create_task(
                self._worker(state, pools[state.shard.model], evaluate, emit, summary),
                name=f"worker:{state.shard.model}:{state.shard.name}:{i}",
            )
            for state in self._states
            for i in range(max(1, int(state.shard.workers.max)))
        ]
        log.info("run_started", tests=plan.total, shards=len(self._states), workers=len(tasks))
        self._cost_capped = False
        try:
            await self._wait(tasks, pools)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        summary.interrupted = self._stop.is_set() or self._cost_capped
        summary.cost_capped = self._cost_capped
        summary.wall_s = time.monotonic() - started
        for state in self._states:
            summary.requests += state.requests
            summary.rate_limited += state.rate_limited
            summary.retries += state.retries
            summary.cached += state.cached
            summary.cost += state.cost
            if state.dead:
                summary.dead_shards[f"{state.shard.model}/{state.shard.name}"] = state.dead
        summary.shards = self.snapshot()
        log.info(
            "run_finished",
            completed=summary.completed,
            infra_errors=summary.infra_errors,
            request_errors=summary.request_errors,
            evaluate_errors=summary.evaluate_errors,
            interrupted=summary.interrupted,
            wall_s=round(summary.wall_s, 3),
        )
        return summary

    async def _wait(self, tasks: list[asyncio.Task[None]], pools: Mapping[str, ModelPool]) -> None:
        """Wait for the workers; after a stop request, give them `grace_s`, then cancel."""
        workers: asyncio.Future[Any] = asyncio.gather(*tasks)
        stop: asyncio.Future[Any] = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({workers, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not workers.done():
                for pool in pools.values():
                    pool.notify()
                _, pending = await asyncio.wait(tasks, timeout=self.grace_s)
                if pending:
                    log.warning("grace_period_over", cancelled=len(pending))
                    for task in pending:
                        task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            else:
                workers.result()  # a worker bug surfaces here
        finally:
            stop.cancel()
            if not workers.done():
                workers.cancel()
            await asyncio.gather(workers, stop, return_exceptions=True)

    async def _worker(
        self,
        state: ShardState,
        pool: ModelPool,
        evaluate: Evaluate,
        emit: OnResult,
        summary: RunSummary,
    ) -> None:
        slots = state.limits.tests
        task = asyncio.current_task()
        while not self._stop.is_set() and state.dead is None and not self._over_budget():
            result: TestResult | None = None
            idle = False
            if not slots.try_acquire():
                await slots.acquire()
            try:
                if self._stop.is_set() or state.dead is not None or self._over_budget():
                    return
                item = pool.take(state)
                if item is None:
                    if pool.in_flight == 0 and pool.queued == 0:
                        return  # nothing queued and nobody can hand work back
                    idle = True
                else:
                    pool.in_flight += 1
                    state.in_flight += 1
                    try:
                        result = await self._tests.run(state, pool, item, evaluate, task)
                    finally:
                        pool.in_flight -= 1
                        state.in_flight -= 1
                        pool.notify()
            finally:
                slots.release()
            if idle:
                await pool.wait()
            elif result is not None:
                summary.count(result)
                await emit(result)
            if state.dead is not None and pool.all_dead:
                # no shard of this model can run anything: record what is left, rerun retries it
                while (left := pool.take(state)) is not None:
                    reason = f"no working shard left: {state.dead}"
                    result = TestResult.infra_error(left, state.shard.name, reason)
                    summary.count(result)
                    await emit(result)
                return

    def _over_budget(self) -> bool:
        """True once the responses' cost reached `max_cost`: no new test is started."""
        if self.max_cost is None:
            return False
        if not self._cost_capped and sum(s.cost for s in self._states) >= self.max_cost:
            self._cost_capped = True
            log.warning("max_cost_reached", max_cost=self.max_cost)
        return self._cost_capped


async def _discard(result: TestResult) -> None:
    return None

"""Five defects of the request path, each pinned by a test that failed before the fix.

- a request took its bucket token before the key's in-flight slot (tokens piled up, then burst);
- a cancelled semaphore waiter already dropped by a release raised ValueError, not CancelledError;
- the per-test deadline could swallow a shutdown cancel landing in the same step;
- AIMD's increase grew with throughput (per N successes) instead of per quiet interval;
- the request bucket wrote aiolimiter's private attributes.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from ultra_async.config import RetryPolicy, load_config
from ultra_async.config_extras import GenerationSettings
from ultra_async.engine import aimd, buckets, limits, semaphore
from ultra_async.engine.chat import BoundChat
from ultra_async.engine.client import Endpoint
from ultra_async.engine.engine import Engine
from ultra_async.engine.headers import RateLimitHeaders
from ultra_async.engine.limits import AdjustableSemaphore, AimdController, KeyLimits, ShardLimits
from ultra_async.engine.retry import Retrier
from ultra_async.engine.shards import ShardState
from ultra_async.planner import build_shards, make_plan
from ultra_async.suites.workflow.item import workflow_item
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, ChatResponse, Message, Outcome, Range, WorkItem

ROOT = Path(__file__).resolve().parent.parent
ITEM = workflow_item("m", "optimal", 0.8, "easy", "simple_task", 0)


class HeldClient:
    """A chat client whose requests wait until the test lets them answer."""

    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    async def send(
        self, endpoint: Endpoint, messages: Sequence[Message], *_: Any
    ) -> tuple[ChatResponse, RateLimitHeaders]:
        self.sent += 1
        await self.release.wait()
        return ChatResponse("ok", 1, 1), RateLimitHeaders()


def shard_state(limits: ShardLimits, client: Any) -> ShardState:
    config_shard = build_shards(load_config(ROOT / "providers.yaml"), "kimi-k2")[0]
    return ShardState(
        config_shard,
        limits,
        deque(),
        0,
        client=client,
        key=SecretStr("sk-x"),
        request_timeout=aiohttp.ClientTimeout(total=5),
        retrier=Retrier(RetryPolicy()),
        settings=GenerationSettings({}, []),
        endpoint=Endpoint(config_shard.route, config_shard.api_model, SecretStr("sk-x")),
    )


async def test_a_request_takes_the_key_slot_before_a_bucket_token() -> None:
    key = KeyLimits(qps=1.0, burst=3, max_in_flight=1)
    shard = ShardLimits(Range(4, 4, 4), Range(1, 1, 1), burst=3, key=key)
    client = HeldClient()
    state = shard_state(shard, client)
    first = asyncio.create_task(BoundChat(state, ITEM, 1e12)([{"role": "user", "content": "a"}]))
    for _ in range(5):
        await asyncio.sleep(0)
    assert client.sent == 1
    waiting = [
        asyncio.create_task(BoundChat(state, ITEM, 1e12)([{"role": "user", "content": "b"}]))
        for _ in range(2)
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    # the two waiting for the key's only slot hold no token: both buckets lost one, not three
    assert shard.bucket is not None and key.limiter is not None
    assert shard.bucket.level < 2.01 and shard.bucket.level > 1.9
    assert key.limiter.level < 2.01 and key.limiter.level > 1.9
    client.release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 10)


async def test_cancelled_semaphore_waiter_dropped_by_a_release_raises_cancelled() -> None:
    sem = AdjustableSemaphore(1)
    await sem.acquire()
    waiter = asyncio.create_task(sem.acquire())
    await asyncio.sleep(0)
    waiter.cancel()  # its future is cancelled now ...
    sem.release()  # ... and the release drops it from the line before the task runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert sem.in_use == 0
    await asyncio.wait_for(sem.acquire(), 1)


CONFIG = """
defaults:
  retry: {max_attempts: 2, base_delay_s: 0.01, max_delay_s: 0.01, test_deadline_s: 0.05}
keys: {k: {env: T_K}}
providers: {p: {kind: openai, base_url: "http://127.0.0.1:9/v1"}}
models: {m: {provider: p, strategy: single, keys: [k], workers: 1, qps: 100}}
"""


async def test_deadline_never_swallows_an_outside_cancel_in_the_same_step(
    write_yaml: Callable[[str], Path],
) -> None:
    config = load_config(write_yaml(CONFIG))
    plan = make_plan(config, workflow_matrix(config, models="m", instances=1))
    delivered: list[object] = []

    async def evaluate(item: WorkItem, chat: ChatFn) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def outside_cancel(fut: asyncio.Future[None]) -> None:
            # runs in the very step the deadline cancelled us: a shutdown cancel lands too
            if fut.cancelled():
                task.cancel()

        never.add_done_callback(outside_cancel)
        await never
        return Outcome()

    async def collect(result: object) -> None:
        delivered.append(result)

    async with Engine(config, keys={"k": SecretStr("x")}) as engine:
        with pytest.raises(asyncio.CancelledError):
            await engine.run(plan, evaluate, on_result=collect)
    assert delivered == []  # not turned into a deadline infra_error and carried on


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_aimd_increase_is_per_quiet_interval_not_per_success_count() -> None:
    clock = FakeClock()
    aimd = AimdController(Range(50, 1, 100), Range(100, 1, 200), clock=clock)
    # a thousand clean responses within one interval: at most one step, however busy
    for _ in range(1000):
        clock.now += 0.001
        aimd.on_success()
    assert aimd.current_qps <= 110
    start = aimd.current_qps
    for _ in range(10):
        clock.now += aimd.increase_every_s
        aimd.on_success()
    assert aimd.current_qps == min(200, start + 10 * 10)


def test_a_fixed_rate_is_not_halved_by_a_429() -> None:
    clock = FakeClock()
    shard = ShardLimits(Range(2, 2, 2), Range(50, 50, 50), burst=2, clock=clock)
    shard.record_rate_limited(1.0, sent_at=clock.now)
    assert shard.qps == 50 and shard.tests.limit == 2
    assert shard.paused_until == clock.now + 1.0


def _private_attributes(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(`self._x` read, `self._x` assigned or declared in __slots__) in a module."""
    read: set[str] = set()
    written: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            (written if isinstance(node.ctx, ast.Store) else read).add(node.attr)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for elt in getattr(node.value, "elts", []):
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    written.add(elt.value)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            written.add(node.name)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            written.add(node.target.id)
    return read, written


@pytest.mark.parametrize("module", [limits, buckets, semaphore, aimd])
def test_limits_touch_no_private_state_they_do_not_own(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    read, written = _private_attributes(tree)
    assert read <= written, f"private attributes of another class: {sorted(read - written)}"
    assert "aiolimiter" not in inspect.getsource(module)  # type: ignore[arg-type]


async def test_own_bucket_rate_change_keeps_waiters_in_order() -> None:
    clock = FakeClock()
    bucket = buckets.TokenBucket(1.0, 1.0, clock)
    assert bucket.try_acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    tasks = [asyncio.create_task(take(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert order == [] and bucket.waiting == 3
    clock.now += 1.0
    bucket.set_rate(2.0)  # settles one second at the old rate: one token for the head
    await asyncio.sleep(0)
    assert order == [0]
    clock.now += 0.5  # one token at the new rate (it took a whole second before)
    bucket.refund(0)
    await asyncio.sleep(0)
    assert order == [0, 1]
    clock.now += 0.5
    bucket.refund(0)
    await asyncio.sleep(0)
    assert order == [0, 1, 2]
    await asyncio.gather(*tasks)

"""Limits without real waiting: semaphores, AIMD with a fake clock, rate changes keep waiters."""

from __future__ import annotations

import asyncio

import pytest

from ultra_async.engine.limits import AdjustableLimiter, AdjustableSemaphore, AimdController
from ultra_async.types import Range


async def test_semaphore_limit_and_peak() -> None:
    sem = AdjustableSemaphore(2)
    await sem.acquire()
    await sem.acquire()
    waiter = asyncio.create_task(sem.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    sem.set_limit(3)  # raising the limit admits the waiter at once
    await asyncio.sleep(0)
    assert waiter.done() and sem.in_use == 3 and sem.peak == 3
    sem.set_limit(1)  # lowering waits for holders to leave
    sem.release()
    late = asyncio.create_task(sem.acquire())
    await asyncio.sleep(0)
    assert not late.done()
    sem.release()
    sem.release()
    await asyncio.sleep(0)
    assert late.done() and sem.in_use == 1


async def test_semaphore_cancelled_waiter_gives_slot_back() -> None:
    sem = AdjustableSemaphore(1)
    await sem.acquire()
    waiter = asyncio.create_task(sem.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    sem.release()
    assert sem.in_use == 0
    await asyncio.wait_for(sem.acquire(), 1)


def test_semaphore_release_without_acquire() -> None:
    with pytest.raises(RuntimeError):
        AdjustableSemaphore(1).release()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_aimd_decreases_once_per_cooldown_and_stays_in_bounds() -> None:
    clock = Clock()
    aimd = AimdController(Range(50, 1, 100), Range(100, 1, 200), clock=clock, cooldown_s=5)
    assert aimd.on_rate_limited(2.0, sent_at=99.0)
    assert (aimd.current_qps, aimd.current_workers) == (50, 25)
    # more 429s for requests sent before the decrease: the same signal
    assert not aimd.on_rate_limited(2.0, sent_at=99.5)
    assert aimd.current_qps == 50
    # a request sent after the decrease and still refused: a new signal
    clock.now += 0.1
    assert aimd.on_rate_limited(2.0, sent_at=100.05)
    assert aimd.current_qps == 25
    for _ in range(20):
        clock.now += 0.1
        aimd.on_rate_limited(None, sent_at=clock.now)
    assert aimd.current_qps == 1 and aimd.current_workers == 1  # never below min


def test_aimd_increase_after_sustained_success_up_to_max() -> None:
    clock = Clock()
    aimd = AimdController(Range(50, 1, 100), Range(100, 1, 200), clock=clock, increase_every_s=2.0)
    clock.now += 1.9
    assert not any(aimd.on_success() for _ in range(9))
    clock.now += 0.1
    assert aimd.on_success()
    assert aimd.current_qps == 110 and aimd.current_workers == 55
    for _ in range(1000):
        clock.now += 2.0
        aimd.on_success()
    assert (aimd.current_qps, aimd.current_workers) == (200, 100)  # never above max


def test_aimd_no_increase_during_retry_after_cooldown() -> None:
    clock = Clock()
    aimd = AimdController(
        Range(2, 1, 2), Range(10, 1, 10), clock=clock, increase_every_s=0.001, cooldown_s=1
    )
    aimd.on_rate_limited(30.0)
    assert aimd.current_qps == 5
    clock.now += 10
    assert not aimd.on_success()  # Retry-After said 30 s
    clock.now += 21
    assert aimd.on_success() and aimd.current_qps == 6


async def test_limiter_rate_change_keeps_waiters() -> None:
    limiter = AdjustableLimiter(qps=1.0, burst=1)
    await limiter.acquire()  # drains the bucket; the next token is 1 s away
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    limiter.set_rate(200.0)  # now 5 ms apart: all three are served quickly
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=2)
    assert loop.time() - started < 0.9


async def test_limiter_burst_is_what_is_configured() -> None:
    limiter = AdjustableLimiter(qps=1.0, burst=3)
    for _ in range(3):
        assert limiter.has_capacity()
        await limiter.acquire()
    assert not limiter.has_capacity()


async def test_try_take_token_takes_both_buckets_or_neither() -> None:
    from ultra_async.engine.limits import KeyLimits, ShardLimits

    key = KeyLimits(qps=1.0, burst=1, max_in_flight=None)
    shard = ShardLimits(Range(2, 1, 2), Range(1, 1, 1), burst=2, key=key)
    assert shard.try_take_token()  # shard 1/2, key 1/1
    assert not shard.try_take_token()  # the key is empty: the shard's token stays
    assert shard.bucket.has_capacity()
    shard.pause(5.0)
    assert not shard.try_take_token()


async def test_try_acquire_respects_queued_waiters() -> None:
    limiter = AdjustableLimiter(qps=1000.0, burst=1)
    assert limiter.try_acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not limiter.try_acquire()  # no overtaking a task already in line
    await asyncio.wait_for(waiter, 1)

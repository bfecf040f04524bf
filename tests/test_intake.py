"""The aggregator's intake: everything waiting goes in one batch; beyond the limit, producers wait."""

from __future__ import annotations

import asyncio

import pytest

from ultra_async.errors import StorageError
from ultra_async.results._intake import Intake


async def test_one_take_gets_everything_waiting() -> None:
    intake: Intake[int] = Intake(limit=1000)
    for n in range(500):
        assert intake.put_nowait(n)
    assert await intake.take_all() == list(range(500))
    assert len(intake) == 0


async def test_take_waits_for_the_first_item() -> None:
    intake: Intake[int] = Intake(limit=10)
    taking = asyncio.create_task(intake.take_all())
    await asyncio.sleep(0)
    assert not taking.done()
    intake.put_nowait(7)
    intake.put_nowait(8)
    assert await taking == [7, 8]


async def test_beyond_the_limit_producers_wait_and_move_in_in_order() -> None:
    intake: Intake[int] = Intake(limit=2)
    assert intake.put_nowait(1) and intake.put_nowait(2)
    assert not intake.put_nowait(3)
    late = [asyncio.create_task(intake.put(n)) for n in (3, 4, 5)]
    await asyncio.sleep(0)
    assert not any(t.done() for t in late)
    assert len(intake) == 5
    assert await intake.take_all() == [1, 2]  # room for two: 3 and 4 move in
    await asyncio.sleep(0)
    assert [t.done() for t in late] == [True, True, False]
    assert not intake.put_nowait(6)  # 5 is still waiting before it
    assert await intake.take_all() == [3, 4]
    await late[2]
    assert await intake.take_all() == [5]


async def test_a_cancelled_producer_item_is_not_taken() -> None:
    intake: Intake[int] = Intake(limit=1)
    intake.put_nowait(1)
    waiting = asyncio.create_task(intake.put(2))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(intake) == 1
    assert await intake.take_all() == [1]
    intake.close()
    assert await intake.take_all() == []


async def test_close_wakes_the_consumer_after_what_is_left() -> None:
    intake: Intake[int] = Intake(limit=10)
    taking = asyncio.create_task(intake.take_all())
    await asyncio.sleep(0)
    intake.close()
    assert await taking == []


async def test_refused_producers_get_the_error() -> None:
    intake: Intake[int] = Intake(limit=1)
    intake.put_nowait(1)
    waiting = asyncio.create_task(intake.put(2))
    await asyncio.sleep(0)
    intake.refuse_waiting(StorageError("disk full"))
    with pytest.raises(StorageError, match="disk full"):
        await waiting

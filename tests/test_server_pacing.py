"""Pacing from x-ratelimit-* headers, token reservations, and a dead shard's waiting workers."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.engine.headers import RateLimitHeaders, parse_duration_s, parse_rate_limit_headers
from ultra_async.engine.limits import LEARN_WINDOW_S, KeyLimits, ShardLimits
from ultra_async.engine.tokens import estimate_request_tokens
from ultra_async.planner import make_plan
from ultra_async.sim import SimServer
from ultra_async.suites.workflow.suite import workflow_matrix
from ultra_async.types import ChatFn, Outcome, Range, WorkItem


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1s", 1.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m30s", 150.0),
        ("0.5", 0.5),  # Azure: plain seconds
        ("10", 10.0),
        ("", None),
        ("soon", None),
        ("-1", None),
    ],
)
def test_durations_in_openai_and_azure_forms(text: str, seconds: float | None) -> None:
    assert parse_duration_s(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_unix_timestamp_reset_is_a_time_from_now() -> None:
    assert parse_duration_s("2000000030", now=2000000000.0) == pytest.approx(30.0)


def test_headers_absent_or_unreadable_are_none() -> None:
    assert parse_rate_limit_headers({}).empty
    parsed = parse_rate_limit_headers(
        {"x-ratelimit-remaining-requests": "x", "x-ratelimit-remaining-tokens": "120"}
    )
    assert parsed.remaining_requests is None and parsed.remaining_tokens == 120


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_declared_limit_below_the_configured_rate_caps_it() -> None:
    shard = ShardLimits(Range(4, 4, 4), Range(40, 40, 40), burst=2, clock=FakeClock())
    shard.observe(RateLimitHeaders(limit_requests=1200, remaining_requests=10), 0)
    assert shard.qps == pytest.approx(20.0)
    shard.observe(RateLimitHeaders(limit_requests=6000, remaining_requests=10), 0)
    assert shard.qps == pytest.approx(40.0)  # never above the configured rate


def test_remaining_brings_the_bucket_down_to_what_the_server_has_left() -> None:
    clock = FakeClock()
    shard = ShardLimits(Range(4, 4, 4), Range(40, 40, 40), burst=5, clock=clock)
    assert shard.bucket is not None
    shard.in_flight = 2  # two more already on their way
    shard.observe(RateLimitHeaders(limit_requests=2400, remaining_requests=1), 0)
    assert shard.bucket.level == pytest.approx(0.0, abs=1e-5)  # 1 + 1 - 2
    assert not shard.try_take_token()
    clock.now += 1 / 39  # one token back (the bucket paces at 99 % of 40/s)
    assert shard.try_take_token()


def test_an_unstated_rate_is_learned_from_remaining_over_a_window() -> None:
    clock = FakeClock()
    shard = ShardLimits(Range(8, 8, 8), Range(40, 40, 40), burst=2, clock=clock)
    # the server refills 20/s; it admits 20 per second and stays empty (Azure: no limit header)
    for _ in range(int(LEARN_WINDOW_S * 20) * 3):
        clock.now += 0.05
        shard.admitted += 1
        shard.observe(RateLimitHeaders(remaining_requests=0, reset_requests_s=0.1), 0)
    assert shard.qps == pytest.approx(20.0, rel=0.05)


def test_without_a_bucket_a_shortfall_pauses_until_the_reset() -> None:
    clock = FakeClock()
    shard = ShardLimits(
        Range(4, 4, 4), Range(float("inf"), float("inf"), float("inf")), 2, clock=clock
    )
    assert shard.bucket is None and shard.try_take_token()
    shard.observe(RateLimitHeaders(remaining_requests=0, reset_requests_s=0.3), 0)
    assert shard.paused_until == pytest.approx(clock.now + 0.3)
    assert not shard.try_take_token()


async def test_tokens_are_reserved_then_settled_with_usage() -> None:
    clock = FakeClock()
    key = KeyLimits(None, 1, None, tpm=6000, clock=clock)
    shard = ShardLimits(Range(4, 4, 4), Range(10, 10, 10), 2, key=key, clock=clock, tpm=3000)
    assert shard.tokens is not None and key.tokens is not None
    estimate = estimate_request_tokens([{"role": "user", "content": "x" * 40}], {"max_tokens": 20})
    assert estimate == 10 + 4 + 20
    await shard.reserve_tokens(estimate)
    assert shard.tokens.level == pytest.approx(50 - 34) and key.tokens.level == pytest.approx(66)
    shard.settle_tokens(estimate, 12)  # the response used 12: 22 come back
    assert shard.tokens.level == pytest.approx(38) and key.tokens.level == pytest.approx(88)
    await shard.reserve_tokens(estimate)
    shard.settle_tokens(estimate, 60)  # used more than reserved: the difference is debited
    assert shard.tokens.level == pytest.approx(38 - 60)
    assert not shard.tokens.has_capacity(1)


CONFIG = """
defaults:
  retry: {max_attempts: 3, base_delay_s: 0.01, max_delay_s: 0.02, test_deadline_s: 30}
keys:
  good: {env: T_GOOD}
  bad: {env: T_BAD}
providers:
  p: {kind: openai, base_url: "http://127.0.0.1:1/v1"}
models:
  m: {provider: p, strategy: keys, keys: [bad, good], instance_prefix: m, workers: 12, qps: 60, burst: 1}
"""


async def test_workers_waiting_for_a_token_on_a_dead_shard_do_not_send(
    write_yaml: Callable[[str], Path],
) -> None:
    config = load_config(write_yaml(CONFIG))
    plan = make_plan(config, workflow_matrix(config, models="m", instances=12))

    async def one(item: WorkItem, chat: ChatFn) -> Outcome:
        await chat([{"role": "user", "content": "hi"}])
        return Outcome(success_level="full_success")

    keys = {"good": SecretStr("s-good"), "bad": SecretStr("s-bad")}
    server_keys = {"s-good": "good", "s-bad": "bad"}
    async with SimServer(keys=server_keys, revoked=["bad"]) as server:
        async with Engine(config, keys=keys, base_urls={"p": server.openai_base_url}) as engine:
            summary = await engine.run(plan, one)
        stats = server.stats()
    assert summary.completed == 60 and summary.dead_shards
    # its first request got the 401; the eleven workers queued behind it sent nothing
    assert stats["keys"]["bad"]["requests"] == 1


def test_the_server_level_is_read_to_the_fraction_from_remaining_limit_and_reset() -> None:
    from ultra_async.engine.limits import server_level

    # 3000 per minute is 50/s: a reset of 30 ms means 1.5 requests short of a full bucket
    assert server_level(0, 3000, 0.03) == pytest.approx(0.5)
    assert server_level(1, 3000, 0.02) == pytest.approx(1.0)
    assert server_level(0, 3000, 0.04) == pytest.approx(0.0)
    # OpenAI's per-minute window: 3 of 60 left, 57 s until it is whole again
    assert server_level(3, 60, 57.0) == pytest.approx(3.0)
    assert server_level(3, None, 0.5) is None and server_level(3, 60, None) is None


def test_requests_on_their_way_are_bounded_by_what_a_round_trip_needs() -> None:
    shard = ShardLimits(Range(64, 64, 64), Range(50, 50, 50), burst=2, clock=FakeClock())
    assert shard.transit is not None and shard.transit.limit == 1  # until the first answer
    shard.record_latency(0.002)
    assert shard.transit.limit == 2  # burst + floor(50 · 2 · 0.002)
    for _ in range(100):
        shard.record_latency(0.3)  # a slow API: 50/s needs 15 on their way
    assert 2 + 29 <= shard.transit.limit <= 2 + 30  # the smoothed latency nears 0.3 s
    unlimited = ShardLimits(Range(4, 4, 4), Range(math.inf, math.inf, math.inf), 2)
    assert unlimited.transit is None


async def test_before_the_first_answer_the_room_grows_with_the_time_waited() -> None:
    import asyncio

    clock = FakeClock()
    shard = ShardLimits(Range(64, 64, 64), Range(50, 50, 50), burst=2, clock=clock)
    assert shard.transit is not None
    await shard.enter_transit()  # the first request: room for one
    second = asyncio.create_task(shard.enter_transit())
    await asyncio.sleep(0)
    assert not second.done() and shard.transit.in_use == 1
    clock.now += 0.1  # no answer after 100 ms: a round trip is at least that long
    await asyncio.wait_for(second, 5)
    assert shard.transit.limit == 1 + 5  # 50/s for 100 ms
    shard.record_latency(0.002)  # the first answer: back to what the round trip needs
    assert shard.transit.limit == 2

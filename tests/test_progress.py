"""The live progress display, rendered to a string during a real simulated run."""

from __future__ import annotations

import contextlib
import io
import sys
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.test_run_simulated import FAST
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import Plan
from ultra_async.report.progress import (
    Rates,
    _jupyter_display,
    live_progress,
    progress_lines,
    progress_table,
)
from ultra_async.runner import RunOptions, run_evaluation


async def test_progress_shows_each_shard_during_a_run(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    config = load_config(write_yaml(FAST))
    console = Console(record=True, width=160, force_terminal=True, file=io.StringIO())
    frames: list[str] = []

    @contextlib.asynccontextmanager
    async def display(engine: Engine, plan: Plan) -> AsyncIterator[None]:
        async with live_progress(engine, plan, console=console, refresh_s=0.05):
            yield
        # what the display shows at the end of the run, rendered once more on its own
        frame = Console(record=True, width=160, file=io.StringIO())
        frame.print(progress_table(engine.snapshot()))
        frames.append(frame.export_text())

    options = RunOptions(models="all", instances=1, simulate=True, out=tmp_path)
    report = await run_evaluation(options, config=config, progress=display)
    assert report.summary.completed == 15
    text = frames[0]
    for shard in ("qwen-key0", "qwen-key1", "DeepSeek-V3-0324-2", "o3-0416-global", "all 3 models"):
        assert shard in text, shard
    assert "5/5" in text and "15/15" in text
    assert "qwen-key0" in console.export_text()  # the live display itself drew the shards


async def test_plain_lines_when_not_a_terminal(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    config = load_config(write_yaml(FAST))
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=120)

    def display(engine: Engine, plan: Plan) -> Any:
        return live_progress(engine, plan, console=console, plain_every_s=0.01)

    await run_evaluation(
        RunOptions(models="o3-0416-global", instances=2, simulate=True, out=tmp_path),
        config=config,
        progress=display,
    )
    lines = out.getvalue().splitlines()
    assert lines and lines[-1].startswith("progress: 10/10 tests")


# ---- honest numbers -----------------------------------------------------------------------


def shard(model: str, name: str, **counts: Any) -> dict[str, Any]:
    base = {"model": model, "shard": name, "planned": 10, "queued": 0, "done": 0,
            "infra_errors": 0, "in_flight": 0, "qps": 5.0, "requests": 0, "rate_limited": 0,
            "retries": 0, "tokens": 0, "dead": None}  # fmt: skip
    return {**base, **counts}


def render(table: Any, width: int = 100, height: int = 30) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(table)
    return console.export_text().splitlines()


def test_a_shard_that_stole_work_is_never_over_100_percent() -> None:
    # key0 did its 10 and 3 of key1's; key1 did 4, holds 2 queued and 1 running
    shards = [
        shard("m", "key0", done=13),
        shard("m", "key1", done=4, queued=2, in_flight=1),
    ]
    totals, models = progress_lines(shards, {})
    (model, (key0, key1)), = models  # fmt: skip
    assert (key0.done, key0.total) == (13, 13)
    assert (key1.done, key1.total) == (4, 7)
    assert (model.done, model.total) == (17, 20) and (totals.done, totals.total) == (17, 20)
    text = "\n".join(render(progress_table(shards, {})))
    assert "13/13" in text and "100%" in text and "11/10" not in text


def test_eta_comes_from_the_recent_rate_and_is_never_negative() -> None:
    now = [0.0]
    rates = Rates(window_s=10.0, clock=lambda: now[0])
    busy = [shard("m", "k", done=0, queued=100, requests=0, tokens=0)]
    rates.sample(busy)
    # a fast start, then a slow stretch: the ETA follows the recent rate only
    for t, done in ((5, 50), (15, 52), (25, 54)):
        now[0] = t
        busy = [shard("m", "k", done=done, queued=100 - done, requests=3 * done, tokens=100 * done)]
        measured = rates.sample(busy)
    tests_per_s, requests_per_s, tokens_per_s = measured["m", "k"]
    assert tests_per_s == pytest.approx(0.2)  # 2 tests in the last 10 s, not 54 in 25 s
    assert requests_per_s == pytest.approx(0.6) and tokens_per_s == pytest.approx(20.0)
    (model, _), = progress_lines(busy, measured)[1]  # fmt: skip
    assert model.eta_s == pytest.approx(46 / 0.2)
    # counters that go backwards (a new engine) never make a negative rate
    now[0] = 30
    assert rates.sample([shard("m", "k")])["m", "k"] == [0.0, 0.0, 0.0]
    done = [shard("m", "k", done=10)]
    assert progress_lines(done, {})[0].eta_s == 0.0
    assert "done" in "\n".join(render(progress_table(done, {})))


def test_measured_rates_beside_the_limit_and_dead_shards_with_their_reason() -> None:
    shards = [
        shard("m", "key0", done=3, queued=4, qps=8.0),
        shard("m", "key1", done=1, qps=2.0, dead="401 Unauthorized: check the key"),
    ]
    rates = {("m", "key0"): [0.5, 2.5, 100.0], ("m", "key1"): [0.0, 0.0, 0.0]}
    text = "\n".join(render(progress_table(shards, rates)))
    assert "2.5/8" in text  # measured requests/s / limit of the live shards
    assert " 6.0k " in text  # tokens/min
    assert "key1 ✗" in text and "dead: key1: 401 Unauthorized: check the key" in text


def test_thirteen_models_fit_100_by_30_with_the_totals_on_top() -> None:
    models = [f"Model-{i:02d}-with-a-long-name-instruct" for i in range(13)]
    shards = [shard(m, f"{m}-key{k}", done=k * 3, queued=5) for m in models for k in range(3)]
    shards[4]["dead"] = "too many failures in a row"
    lines = render(progress_table(shards, {}, height=30), width=100, height=30)
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 100
    rule = next(i for i, line in enumerate(lines) if line.startswith("───"))
    assert "all 13 models" in lines[rule + 1]  # right under the header
    body = lines[rule + 1 :]
    for m in models:
        assert any(m[:10] in line for line in lines), m
    assert sum("✗" in line for line in lines) == 1  # the dead shard, though shards do not fit
    assert not any("-" in line.split()[-1] for line in body if line.split())  # no negative ETA


async def test_thirteen_model_run_on_a_100_by_30_screen(
    write_yaml: Callable[[str], Path], tmp_path: Path
) -> None:
    models = "\n".join(
        f"  model-{i:02d}: {{provider: lab, strategy: keys, keys: [k0, k1], instance_prefix: m{i}, "
        "workers: 4, qps: 2000}"
        for i in range(13)
    )
    config = load_config(
        write_yaml(f"""
defaults:
  retry: {{max_attempts: 6, base_delay_s: 0.05, max_delay_s: 0.5, test_deadline_s: 60}}
keys:
  k0: {{env: T_K0}}
  k1: {{env: T_K1}}
providers:
  lab: {{kind: openai, base_url: "https://lab.invalid/v1"}}
models:
{models}
""")
    )
    screen = Console(record=True, width=100, height=30, force_terminal=True, file=io.StringIO())
    frames: list[list[str]] = []

    @contextlib.asynccontextmanager
    async def display(engine: Engine, plan: Plan) -> AsyncIterator[None]:
        async with live_progress(engine, plan, console=screen, refresh_s=0.02):
            yield
        frames.append(render(progress_table(engine.snapshot(), height=30)))

    options = RunOptions(models="all", instances=2, simulate=True, out=tmp_path)
    report = await run_evaluation(options, config=config, progress=display)
    assert report.summary.completed == 13 * 10
    last = frames[0]
    assert len(last) <= 30 and max(map(len, last)) <= 100
    rule = next(i for i, line in enumerate(last) if line.startswith("───"))
    assert "130/130" in last[rule + 1] and "all 13 models" in last[rule + 1]
    for i in range(13):
        assert any(f"model-{i:02d}" in line and "10/10" in line for line in last), i
    percents = [
        int(w[:-1]) for line in last for w in line.split() if w[:-1].isdigit() and w.endswith("%")
    ]
    assert percents and max(percents) <= 100


def test_a_notebook_gets_one_output_updated_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Handle:
        def update(self, data: dict[str, str], raw: bool) -> None:
            calls.append("update")
            assert raw and "all" in data["text/plain"] and "<pre" in data["text/html"]

    def display(data: dict[str, str], raw: bool, display_id: bool) -> Handle:
        calls.append("display")
        assert display_id and "text/html" in data
        return Handle()

    fake = types.ModuleType("IPython.display")
    fake.display = display  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    show = _jupyter_display(Console(force_jupyter=True, file=io.StringIO()))
    for _ in range(3):
        show(progress_table([shard("m", "k", done=1, queued=2)], {}))
    assert calls == ["display", "update", "update"]


def test_an_eta_under_a_second_is_not_zero() -> None:
    almost = [shard("m", "k", done=9, queued=1)]
    (model, _), = progress_lines(almost, {("m", "k"): [8.0, 0.0, 0.0]})[1]  # fmt: skip
    assert model.eta_s == pytest.approx(1 / 8)
    row = next(
        line
        for line in render(progress_table(almost, {("m", "k"): [8.0, 0.0, 0.0]}))
        if line.startswith("m ")
    )
    assert row.split()[-1] == "0:01"


def test_requests_answered_from_the_cache_are_shown() -> None:
    shards = [shard("m", "key0", done=3), shard("m", "key1", done=2)]
    shards[0]["cached"] = 7
    text = "\n".join(render(progress_table(shards, {}, elapsed_s=5.0)))
    assert "7 requests answered from the cache" in text
    assert "answered from the cache" not in "\n".join(
        render(progress_table(shards[1:], {}, elapsed_s=5.0))
    )

"""The library API from scripts and from inside a running event loop (as in Jupyter)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import ultra_async as ua
from tests.test_run_simulated import FAST
from ultra_async.api import run_blocking
from ultra_async.types import ChatFn, Outcome


@pytest.fixture
def fast_providers(write_yaml: Callable[[str], Path]) -> Path:
    return write_yaml(FAST)


def test_run_from_a_script_blocks_and_returns_the_report(
    fast_providers: Path, tmp_path: Path
) -> None:
    report = ua.run(
        models="o3-0416-global",
        simulate=True,
        seed=1,
        instances=1,
        out=tmp_path,
        providers=fast_providers,
    )
    assert isinstance(report, ua.RunReport)
    assert report.summary.completed == 5
    results = ua.load(tmp_path)
    assert results.models == ["o3-0416-global"]
    assert results.summary()["total"] == 5


async def test_await_run_inside_a_running_loop(fast_providers: Path, tmp_path: Path) -> None:
    # a notebook cell: the loop is already running, `await ua.run(...)` must work
    report = await ua.run(
        models="DeepSeek-V3-0324",
        prompt_types="optimal,baseline",
        simulate=True,
        instances=1,
        out=tmp_path,
        providers=fast_providers,
    )
    assert report.summary.completed == 10


async def test_run_sync_inside_a_running_loop_uses_a_worker_thread(
    fast_providers: Path, tmp_path: Path
) -> None:
    outer = threading.get_ident()
    seen: list[int] = []

    async def evaluate(case: ua.Case, chat: ChatFn) -> Outcome:
        seen.append(threading.get_ident())
        await chat([{"role": "user", "content": "hi"}])
        return Outcome.passed(True)

    suite = ua.Suite(
        "hello", ["kind"], [ua.Case(f"c{i}", {"kind": "greeting"}) for i in range(5)], evaluate
    )
    report = run_blocking(
        lambda: ua.arun(
            suite,
            models="o3-0416-global",
            simulate=True,
            out=tmp_path,
            providers=fast_providers,
            progress=False,
        )
    )
    assert report.summary.completed == 5
    assert seen and all(ident != outer for ident in seen)
    # the notebook's loop is still usable afterwards
    await asyncio.sleep(0)


def test_load_to_dataframe_needs_pandas(fast_providers: Path, tmp_path: Path) -> None:
    ua.run(
        models="o3-0416-global", simulate=True, instances=1, out=tmp_path, providers=fast_providers
    )
    pandas = pytest.importorskip("pandas")
    frame = ua.load(tmp_path).to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 5


def test_public_names_are_sorted() -> None:
    assert ua.__all__ == sorted(ua.__all__)
    for name in ua.__all__:
        assert hasattr(ua, name), name

"""The live progress display, rendered to a string during a real simulated run."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.test_run_simulated import FAST
from ultra_async.config import load_config
from ultra_async.engine.engine import Engine
from ultra_async.planner import Plan
from ultra_async.report.progress import live_progress, progress_table
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
        frame.print(progress_table(engine.snapshot(), 1.0))
        frames.append(frame.export_text())

    options = RunOptions(models="all", instances=1, simulate=True, out=tmp_path)
    report = await run_evaluation(options, config=config, progress=display)
    assert report.summary.completed == 15
    text = frames[0]
    for shard in ("qwen-key0", "qwen-key1", "DeepSeek-V3-0324-2", "o3-0416-global", "all models"):
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

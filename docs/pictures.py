"""The pictures of docs/reporting.md, made from a real simulated run (`make docs`).

    python docs/pictures.py            # from the repository root

Writes docs/img/report-plot.png (`report --plot`), docs/img/progress.svg (the live display at
100 × 30) and, when chromium is installed, docs/img/viewer-heatmap.png and
docs/img/viewer-transcript.png (the viewer in headless chromium).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from tests.browser import INSTALL, Browser, find_chromium  # noqa: E402
from ultra_async.engine.engine import Engine  # noqa: E402
from ultra_async.planner import Plan  # noqa: E402
from ultra_async.report.plots import write_plot  # noqa: E402
from ultra_async.report.progress import Rates, progress_table  # noqa: E402
from ultra_async.report.view import write_html  # noqa: E402
from ultra_async.results.storage import read_database  # noqa: E402
from ultra_async.runner import RunOptions, run_evaluation  # noqa: E402

IMG = ROOT / "docs" / "img"
OUT = Path("results/docs-pictures")


async def run() -> str:
    """The demo matrix at one instance; returns the progress display half-way, as SVG."""
    frames: list[str] = []

    @contextlib.asynccontextmanager
    async def progress(engine: Engine, plan: Plan) -> AsyncIterator[None]:
        rates = Rates(window_s=5.0)

        async def watch() -> None:
            for _ in range(600):  # at most a minute
                await asyncio.sleep(0.1)
                shards = engine.snapshot()
                measured = rates.sample(shards)
                done = sum(s["done"] for s in shards)
                if not frames and done >= plan.total // 2:
                    screen = Console(record=True, width=100, height=30, file=io.StringIO())
                    screen.print(progress_table(shards, measured, height=30))
                    frames.append(screen.export_svg(title="python -m ultra_async run"))
                    return

        task = asyncio.create_task(watch())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    options = RunOptions(
        models="all",
        prompt_types="optimal,baseline,flawed_sequence_disorder",
        difficulties="easy",
        task_types="all",
        instances=1,
        simulate=True,
        seed=1,
        out=OUT,
    )
    await run_evaluation(options, progress=progress)
    return frames[0] if frames else ""


async def viewer_pictures(page: Path) -> None:
    async with Browser(width=1280, height=860) as browser:
        await browser.goto(page.as_uri() + "#by=prompt_type&metric=success_rate")
        (IMG / "viewer-heatmap.png").write_bytes(await browser.screenshot(full_page=False))
        # a cell where something failed, then its first test (failures are listed first)
        await browser.evaluate(
            "(() => { const cells = [...document.querySelectorAll('#heatmap td.cell')]"
            ".filter(c => !c.classList.contains('empty'));"
            " const value = (c) => parseFloat(c.innerText);"
            " const worst = cells.sort((a, b) => value(a) - value(b))[0];"
            " worst.id = 'worst'; })()"
        )
        await browser.click("#worst")
        await browser.wait_for("document.querySelectorAll('#tests tr.test').length > 0")
        await browser.click("#tests tr.test")
        await browser.wait_for("!!document.querySelector('#transcript .request')")
        await browser.evaluate("document.getElementById('tests').scrollIntoView()")
        (IMG / "viewer-transcript.png").write_bytes(await browser.screenshot(full_page=False))


def main() -> int:
    IMG.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(OUT, ignore_errors=True)
    try:
        svg = asyncio.run(run())
        if svg:
            (IMG / "progress.svg").write_text(svg, encoding="utf-8")
        db = read_database(OUT / "master_database.json")
        write_plot(db, IMG / "report-plot.png", "prompt_type")
        if find_chromium() is None:
            print(f"chromium not found: viewer pictures left as they are ({INSTALL})")
            return 0
        page = OUT / "viewer.html"
        write_html(OUT, page)
        asyncio.run(viewer_pictures(page.resolve()))
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    print(f"pictures written to {IMG.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

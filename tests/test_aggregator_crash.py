"""kill -9 at arbitrary moments, resume each time: the final database equals an uninterrupted run's."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.factory import infra, items, stream
from ultra_async.results import db
from ultra_async.results.aggregator import Aggregator
from ultra_async.results.storage import DATABASE_FILE, read_database

ROOT = Path(__file__).resolve().parent.parent

# A run that resumes: skips what the journal holds, sends an infra error first for some items
# (retried by the next run), and paces results so that kills land mid-stream.
CHILD = """
import asyncio, sys
from pathlib import Path
from tests.fixtures.factory import infra, items, stream
from ultra_async.results.aggregator import Aggregator

async def main() -> None:
    async with Aggregator(Path(sys.argv[1]), buffer_size=3, flush_interval_s=0.05) as agg:
        done = agg.done_ids
        every = items(6)
        flaky = {item.id for item in every[::7]}
        for result in stream(6):
            if result.item_id in done:
                continue
            if result.item_id in flaky and int(sys.argv[2]) % 2 == 0:
                await agg.submit(infra(every[[i.id for i in every].index(result.item_id)]))
            else:
                await agg.submit(result)
            await asyncio.sleep(0.015)

asyncio.run(main())
"""


async def uninterrupted(out: Path) -> None:
    async with Aggregator(out) as agg:
        for result in stream(6):
            await agg.submit(result)


@pytest.mark.slow
def test_kill_minus_nine_and_resume_gives_the_uninterrupted_database(tmp_path: Path) -> None:
    asyncio.run(uninterrupted(tmp_path / "once"))
    out = tmp_path / "killed"
    rng = random.Random(3)
    kills = attempt = 0
    while True:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(attempt)], cwd=ROOT)
        if attempt < 6:
            time.sleep(rng.uniform(0.35, 0.9))  # the interpreter starts in ~0.3 s
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                kills += 1
        assert child.wait(timeout=60) in (0, -signal.SIGKILL)
        # Even attempts turn some items into infra errors; an odd attempt that completes
        # retries every one of them.
        if child.returncode == 0 and attempt % 2 == 1:
            break
        attempt += 1
        assert attempt < 30
    assert kills >= 3
    expected, got = (
        read_database(tmp_path / "once" / DATABASE_FILE),
        read_database(out / DATABASE_FILE),
    )
    assert db.comparable(got) == db.comparable(expected)
    assert got["overall_stats"]["infra_errors"] == 0
    assert db.check(out).code == db.EXIT_OK
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_factory_stream_and_items_agree() -> None:
    # The child above maps an item id back to its WorkItem through items(); keep them aligned.
    assert [r.item_id for r in stream(6)] == [i.id for i in items(6)]
    assert infra(items()[0]).item_id == items()[0].id

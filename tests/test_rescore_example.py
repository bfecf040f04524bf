"""The re-scoring example in docs/ runs as written: a changed metric, replayed from the cache."""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_rescore_example_replays_with_zero_requests_and_rescores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "providers.yaml", tmp_path / "providers.yaml")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "docs" / "examples" / "rescore_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "original: 40 tests" in out
    replay = re.search(
        r"replay: 40 tests, 0 requests, (\d+) answered from the cache, 0 misses", out
    )
    assert replay is not None and int(replay.group(1)) > 40
    rates = re.search(r"full success: ([\d.]+)% with the old metric, ([\d.]+)% with the new", out)
    assert rates is not None and float(rates.group(2)) < float(rates.group(1))
    # the original database went to a backup folder; the replay wrote a new one
    assert list((tmp_path / "results" / "rescore").glob("backup-*/master_database.json"))

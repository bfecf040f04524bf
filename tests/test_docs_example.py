"""The example in docs/ runs as written."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_notebook_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "providers.yaml", tmp_path / "providers.yaml")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "docs" / "examples" / "notebook_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "60 tests, 0 infra errors" in out
    assert "qwen-key2" in out and "DeepSeek-V3-0324-3" in out
    assert (tmp_path / "results" / "notebook" / "master_database.json").exists()
    png = tmp_path / "results" / "notebook" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

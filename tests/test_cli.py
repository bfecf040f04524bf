from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from ultra_async.cli.main import main


def test_plan_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "plan",
            "--providers",
            str(ROOT / "providers.yaml"),
            "--models",
            "all",
            "--prompt-types",
            "optimal",
            "--instances",
            "20",
            "--format",
            "json",
        ]
    )
    assert code == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert len(rows) == 5 * 3 + 3 * 3 + 3 + 2
    qwen = [r for r in rows if r["model"] == "qwen2.5-72b-instruct"]
    assert [r["key_index"] for r in qwen] == [0, 1, 2]
    assert all(r["workers"] == 2 and r["qps"] == 10 for r in qwen)
    ds = [r for r in rows if r["model"] == "DeepSeek-V3-0324"]
    assert [r["deployment"] for r in ds] == [
        "DeepSeek-V3-0324",
        "DeepSeek-V3-0324-2",
        "DeepSeek-V3-0324-3",
    ]
    assert all(r["workers"] == "50->100" and r["qps"] == "100->200" for r in ds)
    assert sum(r["items"] for r in rows) == 13 * 5 * 20
    for row in rows:
        assert set(row) >= {"model", "shard", "provider", "workers", "qps", "items"}


def test_plan_table_shows_every_shard(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "plan",
                "--providers",
                str(ROOT / "providers.yaml"),
                "--models",
                "DeepSeek-V3-0324,kimi-k2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for shard in ("DeepSeek-V3-0324-2", "DeepSeek-V3-0324-3", "kimi-k2", "IDEALLAB_API_KEY_CLOSED"):
        assert shard in out


def test_validate_reports_keys_by_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_API_KEY", "super-secret-value")
    assert main(["validate", "--providers", str(ROOT / "providers.yaml")]) == 0
    out = capsys.readouterr().out
    assert "AZURE_API_KEY" in out and "present" in out
    assert "IDEALLAB_API_KEY_0" in out and "missing" in out
    assert "super-secret-value" not in out


def test_bad_config_exits_2_with_one_line(write_yaml: Callable[[str], Path]) -> None:
    text = (
        (ROOT / "providers.yaml").read_text().replace("qps: 10\nx-ideallab", "qps: -10\nx-ideallab")
    )
    assert "qps: -10" in text
    bad = write_yaml(text)
    proc = subprocess.run(
        [sys.executable, "-m", "ultra_async", "validate", "--providers", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 5, lines  # five qwen models inherit the bad value, one line each
    assert all(
        line.startswith(f"{bad}: models.qwen") and line.endswith(".qps: must be > 0")
        for line in lines
    )
    assert "Traceback" not in proc.stderr


def test_unknown_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--providers", str(ROOT / "providers.yaml"), "--models", "gpt-9"]) == 2
    assert "unknown model 'gpt-9'" in capsys.readouterr().err


def test_help_for_each_command() -> None:
    for command in ("plan", "validate"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0


def test_cli_reference_matches_help() -> None:
    from ultra_async.cli.main import reference_markdown

    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == reference_markdown(), "docs/cli.md is stale: run `make docs`"
    for command in ("plan", "validate", "run", "report", "db", "serve-sim", "db migrate"):
        assert f"## {command}" in current

"""Which event loop runs started by ultra_async use: uvloop only when installed and not refused."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from typing import Any

import pytest

from ultra_async import _loop
from ultra_async.api import run_blocking
from ultra_async.errors import ConfigError

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == "uvloop":
            raise ModuleNotFoundError("No module named 'uvloop'", name="uvloop")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", fake_import)


def test_the_suite_runs_on_the_standard_loop() -> None:
    assert _loop.loop_factory() is None

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_blocking(loop_type).startswith("asyncio")


def test_auto_without_uvloop_is_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULTRA_ASYNC_LOOP", "auto")
    without_uvloop(monkeypatch)
    assert _loop.loop_factory() is None


def test_insisting_on_missing_uvloop_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ULTRA_ASYNC_LOOP", "uvloop")
    without_uvloop(monkeypatch)
    with pytest.raises(ConfigError, match=r"ultra_async\[fast\]"):
        _loop.loop_factory()


def test_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULTRA_ASYNC_LOOP", "trio")

    async def nothing() -> None:
        return None

    with pytest.raises(ConfigError, match="auto, asyncio or uvloop"):
        _loop.run(nothing())


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop (ultra_async[fast]) is not installed")
def test_auto_uses_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ULTRA_ASYNC_LOOP", "auto")

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert _loop.run(loop_type()).startswith("uvloop")

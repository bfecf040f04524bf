"""Shared fixtures: the repository's providers.yaml and small config files written on the fly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ultra_async.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_config() -> Config:
    """The providers.yaml shipped at the repository root."""
    return load_config(ROOT / "providers.yaml")


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML text to a fresh file and return its path."""
    counter = iter(range(1000))

    def write(text: str) -> Path:
        path = tmp_path / f"providers_{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the machine's API keys or provider overrides."""
    import os

    for var in list(os.environ):
        if var.startswith(("IDEALLAB_", "AZURE_", "ULTRA_ASYNC_")):
            monkeypatch.delenv(var, raising=False)
    # the standard event loop even where uvloop (ultra_async[fast]) happens to be installed
    monkeypatch.setenv("ULTRA_ASYNC_LOOP", "asyncio")


@pytest.fixture(autouse=True)
def _aioresponses_on_aiohttp_314(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioresponses 0.7.x builds ClientResponse without the `stream_writer` aiohttp 3.14 requires.

    The mock's response has already been "sent", so a writer reporting zero bytes is accurate.
    """
    import inspect
    from types import SimpleNamespace
    from typing import Any

    import aioresponses.core
    from aiohttp import ClientResponse

    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class CompatResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(aioresponses.core, "ClientResponse", CompatResponse)


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    """Only warnings and errors reach the test output."""
    from ultra_async.logs import configure_logging

    configure_logging("warning")

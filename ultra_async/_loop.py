"""The event loop a blocking run uses: uvloop when installed (`ultra_async[fast]`), else asyncio.

uvloop is never required. `ULTRA_ASYNC_LOOP=asyncio` keeps the standard loop even when uvloop is
installed (the test suite sets it); `ULTRA_ASYNC_LOOP=uvloop` insists on uvloop and fails with a
clear message when it is missing. Code already inside a running loop (a notebook, your own
`asyncio.run`) keeps that loop: this only chooses the loop of runs ultra_async starts itself.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")
LOOP_ENV = "ULTRA_ASYNC_LOOP"
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> LoopFactory | None:
    """uvloop's loop factory when it is installed and wanted; None for the standard loop."""
    choice = os.environ.get(LOOP_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "asyncio", "uvloop"):
        raise ConfigError(f"{LOOP_ENV}={choice!r}: use auto, asyncio or uvloop")
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                f"{LOOP_ENV}=uvloop but uvloop is not installed; "
                "pip install 'ultra_async[fast]' or unset it"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` chooses."""
    try:
        factory = loop_factory()
    except BaseException:
        main.close()  # never awaited: close it so Python does not warn
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)

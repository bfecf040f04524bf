"""Running coroutines from synchronous code, including inside a running event loop (Jupyter)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def run_blocking(factory: Callable[[], Awaitable[T]]) -> T:
    """Run `factory()` to completion and return its result, from plain or notebook code.

    Without a running loop this is `asyncio.run`. Inside one (a Jupyter cell), the coroutine
    runs on a fresh loop in a worker thread, so the notebook's loop is neither blocked by a
    nested run nor patched.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ultra_async") as pool:
        return pool.submit(asyncio.run, main()).result()

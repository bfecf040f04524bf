"""What the engine keeps of each test: its requests for the transcript, answers from the cache.

A `Recorder` wraps one test's bound chat. Per request it keeps references (the new messages,
the response, failed attempts), never encodes anything: the aggregator's writer thread does
that. With the cache on, it computes the request's key, answers a hit without touching the
network or a rate-limit token, and under `--cache only` turns a miss into an infra error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InfraError, RequestError
from ..results.cache import CacheMode, ResponseCache, cache_key, cache_path
from ..results.transcript_writer import TranscriptWriter
from ..results.transcripts import Request, TestRecording, TranscriptMode
from ..types import ChatFn, ChatResponse, Message, TestResult
from .shards import ShardState

#: the infra_error reason of a request `--cache only` could not answer
NOT_IN_CACHE = "not in cache"


class Recording:
    """The engine's side of transcripts and the cache for one run."""

    def __init__(
        self,
        cache_mode: CacheMode = "off",
        cache: ResponseCache | None = None,
        keys: set[bytes] | frozenset[bytes] = frozenset(),
    ) -> None:
        self.cache_mode: CacheMode = cache_mode if cache is not None else "off"
        #: keys present when the run started: a run never answers from its own new entries,
        #: so which test gets which reply does not depend on timing
        self.keys = keys
        self._cache = cache
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="ultra_async_cache") if cache else None
        )

    def recorder(self, chat: ChatFn, state: ShardState) -> Recorder:
        return Recorder(self, chat, state)

    async def lookup(self, key: bytes) -> ChatResponse | None:
        """The cached reply for `key`, read in the cache's own thread; None if unusable."""
        assert self._cache is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._cache.get, key)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._cache is not None:
            self._cache.close()


class Recorder:
    """One test's chat function: the bound chat, with the cache in front and a record kept."""

    __slots__ = (
        "_attempts",
        "_chat",
        "_last",
        "_recording",
        "_seen",
        "_state",
        "cached",
        "requests",
    )

    def __init__(self, recording: Recording, chat: ChatFn, state: ShardState) -> None:
        self._recording = recording
        self._chat = chat
        self._state = state
        self._seen = 0
        self._last: Any = None
        self._attempts: list[tuple[str, int | None]] | None = None
        self.cached = 0
        self.requests: list[Request] = []

    async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
        seen = self._seen
        # the messages new since this test's previous request (the usual growing list)
        if seen and len(messages) >= seen and messages[seen - 1] is self._last:
            new = list(messages[seen:])
        else:
            new = list(messages)
        self._seen = len(messages)
        self._last = messages[-1] if messages else None
        recording = self._recording
        mode = recording.cache_mode
        key = None
        if mode != "off":
            key = cache_key(self._state.shard.model, messages, params)
            if mode != "refresh" and key in recording.keys:
                hit = await recording.lookup(key)
                if hit is not None:
                    self.cached += 1
                    self._state.cached += 1
                    self.requests.append(Request(new, hit, None, True, key, 0.0))
                    return hit
            if mode == "only":
                self.requests.append(Request(new, None, [(NOT_IN_CACHE, None)], False, None, 0.0))
                raise InfraError(NOT_IN_CACHE, kind="cache_miss")
        self._attempts = None
        started = time.monotonic()
        try:
            response = await self._chat(messages, **params)
        except BaseException:
            elapsed = time.monotonic() - started
            self.requests.append(Request(new, None, self._attempts, False, None, elapsed))
            raise
        self.requests.append(Request(new, response, self._attempts, False, key, 0.0))
        return response

    def failed(self, error: RequestError) -> None:
        """Called by the bound chat for every failed attempt (the reason and HTTP status)."""
        if self._attempts is None:
            self._attempts = []
        self._attempts.append((str(error), error.status))

    def finish(self, result: TestResult) -> TestResult:
        """`result` carrying this test's recording to the writer (not journaled)."""
        recorded = _RecordedResult(**{name: getattr(result, name) for name in _FIELDS})
        shard = self._state.shard
        object.__setattr__(
            recorded,
            "transcript",
            TestRecording(result.item_id, shard.model, shard.name, self.requests),
        )
        return recorded


_FIELDS = tuple(f.name for f in dataclasses.fields(TestResult) if f.init)


def _recorded_class() -> type[TestResult]:
    class RecordedResult(TestResult):
        """A TestResult with its recording in a slot that no serializer sees."""

        __slots__ = ("transcript",)

    # a dataclass again (the same fields), so orjson writes it exactly like a TestResult
    frozen = bool(TestResult.__dataclass_params__.frozen)  # type: ignore[attr-defined]
    return dataclasses.dataclass(frozen=frozen)(RecordedResult)


_RecordedResult = _recorded_class()


@contextlib.asynccontextmanager
async def open_recording(
    out_dir: Path,
    *,
    transcripts: TranscriptMode = "all",
    cache: CacheMode = "use",
    cache_dir: Path | None = None,
) -> AsyncIterator[tuple[Recording | None, TranscriptWriter | None]]:
    """The engine's Recording and the writer's TranscriptWriter for one run (None when off)."""
    if transcripts == "none" and cache == "off":
        yield None, None
        return
    path = cache_path(out_dir, cache_dir)
    if cache == "only" and not path.exists():
        raise ConfigError(
            f"no response cache at {path}: --cache only replays a run that used the cache "
            "(the default --cache use); run without --cache only to send the requests"
        )

    def open_all() -> tuple[Recording, TranscriptWriter]:
        if cache == "off":
            recording, store = Recording(), None
        else:
            store = ResponseCache(path)
            store.register_user(out_dir)
            reader = ResponseCache(path)
            keys = reader.keys() if cache != "refresh" else set()
            recording = Recording(cache, reader, keys)
        writer = TranscriptWriter(out_dir, transcripts, store)
        writer.open()
        return recording, writer

    recording, writer = await asyncio.to_thread(open_all)
    try:
        yield recording, writer
    finally:

        def close_all() -> None:
            recording.close()
            writer.close()
            if writer.cache is not None:
                writer.cache.close()

        await asyncio.shield(asyncio.to_thread(close_all))

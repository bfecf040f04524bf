"""Writing transcripts: encoding and compressing in the aggregator's writer thread.

Called with each batch of journaled results, after the journal append: the cache entries the
batch adds are committed first, then the transcripts that refer to them.
"""

from __future__ import annotations

import contextlib
import sqlite3
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from ..types import ChatResponse, TestResult
from .transcripts import (
    _SCHEMA,
    CAP_BYTES,
    TRANSCRIPTS_FILE,
    Request,
    TestRecording,
    TranscriptMode,
    connect,
)

#: a single message or reply longer than this is cut when one request alone exceeds the cap
_CUT_CHARS = 16 * 1024

log = structlog.get_logger("ultra_async.results.transcripts")


def keeps_conversation(mode: TranscriptMode, result: TestResult) -> bool:
    """Whether `mode` keeps this test's conversation ("failures": not a completed full success)."""
    if mode == "all":
        return True
    if mode == "none":
        return False
    return not (result.outcome == "completed" and result.success_level == "full_success")


def encode(recording: TestRecording, cap_bytes: int = CAP_BYTES) -> tuple[bytes, bool]:
    """The compressed body of a transcript and whether requests were left out to fit the cap."""
    pieces: list[bytes] = []
    size = 2
    truncated = False
    previous: ChatResponse | None = None
    for index, request in enumerate(recording.requests):
        entry = _entry(request, index, previous)
        piece = orjson.dumps(entry, default=_plain)
        if size + len(piece) + 1 > cap_bytes:
            truncated = True
            if pieces:
                break
            piece = orjson.dumps(_cut(entry), default=_plain)
            if size + len(piece) + 1 > cap_bytes:
                break
        pieces.append(piece)
        size += len(piece) + 1
        previous = request.response
    return zlib.compress(b"[" + b",".join(pieces) + b"]", 6), truncated


def _entry(request: Request, index: int, previous: ChatResponse | None) -> dict[str, Any]:
    response = request.response
    messages: list[Any] = list(request.messages)
    if previous is not None and messages:
        first = messages[0]
        # the assistant turn a conversation echoes back is the previous reply: store a reference
        if (
            isinstance(first, Mapping)
            and len(first) == 2
            and first.get("role") == "assistant"
            and first.get("content") == previous.content
        ):
            messages[0] = {"role": "assistant", "reply_of": index - 1}
    entry: dict[str, Any] = {"messages": messages}
    if response is not None and request.key is not None:
        entry["reply_key"] = request.key.hex()
    else:
        entry["reply"] = response.content if response is not None else None
    entry["input_tokens"] = response.input_tokens if response else 0
    entry["output_tokens"] = response.output_tokens if response else 0
    entry["latency_s"] = round(response.latency_s if response else request.elapsed_s, 6)
    entry["finish_reason"] = response.finish_reason if response else None
    entry["cached"] = request.cached
    entry["attempts"] = [{"error": e, "status": s} for e, s in request.attempts or ()]
    return entry


def _cut(entry: dict[str, Any]) -> dict[str, Any]:
    def cut(text: Any) -> Any:
        if isinstance(text, str) and len(text) > _CUT_CHARS:
            return text[:_CUT_CHARS] + f"… [{len(text) - _CUT_CHARS} characters cut]"
        return text

    messages = [
        {k: cut(v) for k, v in m.items()} if isinstance(m, Mapping) else m
        for m in entry["messages"]
    ]
    return {**entry, "messages": messages, "reply": cut(entry.get("reply"))}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list):
        return list(value)
    return str(value)


class TranscriptWriter:
    """Writes transcripts (and the cache entries they refer to) from the aggregator's thread.

    `write` is called with each batch of journaled results, after the journal append. A
    failure here never costs a result: it is logged once and the run goes on.
    """

    def __init__(self, out_dir: Path, mode: TranscriptMode, cache: Any = None) -> None:
        self.path = Path(out_dir) / TRANSCRIPTS_FILE
        self.mode: TranscriptMode = mode
        #: a ResponseCache opened for writing, or None when the cache is off
        self.cache = cache
        self._conn: sqlite3.Connection | None = None
        self._last_error: str | None = None
        self.written = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        conn.executescript(_SCHEMA)
        if self.cache is not None:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('cache_path', ?)",
                (str(Path(self.cache.path).resolve()),),
            )
        self._conn = conn

    def write(self, results: Sequence[TestResult]) -> None:
        """Store the recordings that travel with `results` (runs in the writer thread)."""
        batch = [
            (result, rec)
            for result in results
            if isinstance(rec := getattr(result, "transcript", None), TestRecording)
        ]
        if not batch or self._conn is None:
            return
        try:
            if self.cache is not None:
                self.cache.put_many(
                    [
                        (r.key, rec.model, r.response)
                        for _, rec in batch
                        for r in rec.requests
                        if r.key is not None and r.response is not None and not r.cached
                    ]
                )
            rows = [row for result, rec in batch if (row := self._row(result, rec)) is not None]
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO transcripts VALUES (?, ?, ?, ?, ?, ?)", rows
                )
            self.written += len(rows)
            self._last_error = None
        except (sqlite3.Error, OSError) as exc:
            if str(exc) != self._last_error:
                log.error("transcripts_write_failed", path=str(self.path), error=str(exc))
            self._last_error = str(exc)

    def _row(self, result: TestResult, rec: TestRecording) -> tuple[Any, ...] | None:
        refs = b"".join(r.key for r in rec.requests if r.key is not None and r.response)
        if keeps_conversation(self.mode, result):
            body, truncated = encode(rec)
        elif refs:
            body, truncated = None, False  # only the cache references, for `cache prune`
        else:
            return None
        return (rec.item_id, rec.model, rec.shard, body, int(truncated), refs)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

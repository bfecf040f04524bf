"""Transcripts: every test's conversation, stored beside the journal in one SQLite file.

The engine records raw Python objects per request (no encoding on the event loop); the
aggregator's writer thread encodes, compresses and stores them in the same batch as the
journal append. A reply that is in the response cache is stored as its cache key, never twice.
Each test's transcript is capped at `CAP_BYTES` of encoded JSON (before compression); what
does not fit is left out and the transcript says `truncated`. The writing side is in
`transcript_writer.py`.
"""

from __future__ import annotations

import os
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from ..types import ChatResponse, Message, TestResult

TRANSCRIPTS_FILE = "transcripts.sqlite"
TranscriptMode = Literal["all", "failures", "none"]
TRANSCRIPT_MODES: tuple[TranscriptMode, ...] = ("all", "failures", "none")
#: encoded JSON per test before compression; later requests are left out beyond it
CAP_BYTES = 512 * 1024

log = structlog.get_logger("ultra_async.results.transcripts")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transcripts (
    item_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    shard TEXT NOT NULL,
    body BLOB,
    truncated INTEGER NOT NULL DEFAULT 0,
    refs BLOB NOT NULL DEFAULT x''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(slots=True)
class Request:
    """One request of a test as the engine saw it (raw objects, encoded later)."""

    messages: list[Message]
    response: ChatResponse | None
    attempts: list[tuple[str, int | None]] | None
    cached: bool
    #: the cache key of the reply (a hit, or a reply this test adds to the cache)
    key: bytes | None
    elapsed_s: float


@dataclass(slots=True)
class TestRecording:
    """A test's requests, travelling with its TestResult to the writer."""

    __test__ = False  # not a pytest test class

    item_id: str
    model: str
    shard: str
    requests: list[Request]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode: commits survive kill -9; readers never see half a write."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def set_aside_transcripts(out_dir: Path, backup: Path | None) -> None:
    """Move the transcripts beside the journal that `--fresh` moved into `backup`."""
    if backup is None:
        return
    for suffix in ("", "-wal", "-shm"):
        path = Path(out_dir) / (TRANSCRIPTS_FILE + suffix)
        if path.exists():
            os.replace(path, backup / path.name)


def read_transcript(out_dir: Path, item_id: str) -> dict[str, Any] | None:
    """One test's transcript from a results directory; None when it has none."""
    path = Path(out_dir) / TRANSCRIPTS_FILE
    if not path.exists():
        return None
    conn = connect(path, readonly=True)
    try:
        row = conn.execute(
            "SELECT model, shard, body, truncated FROM transcripts WHERE item_id = ?", (item_id,)
        ).fetchone()
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
    finally:
        conn.close()
    if row is None or row[2] is None:
        return None
    model, shard, body, truncated = row
    entries: list[dict[str, Any]] = orjson.loads(zlib.decompress(body))
    replies = _cached_replies(meta.get("cache_path"), entries)
    requests: list[dict[str, Any]] = []
    for entry in entries:
        reply = entry.get("reply")
        if "reply_key" in entry:
            reply = replies.get(entry["reply_key"])
        messages = [
            {"role": "assistant", "content": requests[m["reply_of"]]["reply"]}
            if isinstance(m, dict) and "reply_of" in m
            else m
            for m in entry["messages"]
        ]
        requests.append(
            {
                "messages": messages,
                "reply": reply,
                "input_tokens": int(entry["input_tokens"]),
                "output_tokens": int(entry["output_tokens"]),
                "latency_s": float(entry["latency_s"]),
                "finish_reason": entry["finish_reason"],
                "cached": bool(entry["cached"]),
                "attempts": [
                    {"error": str(a["error"]), "status": a["status"]} for a in entry["attempts"]
                ],
            }
        )
    return {
        "item_id": item_id,
        "model": model,
        "shard": shard,
        "requests": requests,
        "truncated": bool(truncated),
    }


def _cached_replies(cache_path: str | None, entries: list[dict[str, Any]]) -> dict[str, str]:
    keys = [e["reply_key"] for e in entries if "reply_key" in e]
    if not keys or cache_path is None or not Path(cache_path).exists():
        return {}
    from .cache import ResponseCache

    cache = ResponseCache(Path(cache_path), readonly=True)
    try:
        found = {}
        for key in keys:
            response = cache.get(bytes.fromhex(key))
            if response is not None:
                found[key] = response.content
        return found
    finally:
        cache.close()


def recorded_cache_path(out_dir: Path) -> Path | None:
    """The cache file the runs in `out_dir` used, as recorded in its transcripts file."""
    path = Path(out_dir) / TRANSCRIPTS_FILE
    if not path.exists():
        return None
    conn = connect(path, readonly=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE name = 'cache_path'").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return Path(row[0]) if row else None


def referenced_keys(out_dir: Path) -> set[bytes]:
    """Cache keys the tests in `out_dir`'s journal refer to (through their transcripts)."""
    from .storage import JOURNAL_FILE, iter_journal

    path = Path(out_dir) / TRANSCRIPTS_FILE
    if not path.exists():
        return set()
    items = {
        entry.item_id
        for entry in iter_journal(Path(out_dir) / JOURNAL_FILE)
        if isinstance(entry, TestResult)
    }
    conn = connect(path, readonly=True)
    try:
        keys: set[bytes] = set()
        for item_id, refs in conn.execute("SELECT item_id, refs FROM transcripts"):
            if item_id in items:
                keys.update(refs[i : i + 16] for i in range(0, len(refs), 16))
        return keys
    finally:
        conn.close()


def matching_items(out_dir: Path, prefix: str, limit: int = 5) -> list[str]:
    """Item ids with a transcript that start with `prefix` (to suggest what was meant)."""
    path = Path(out_dir) / TRANSCRIPTS_FILE
    if not path.exists():
        return []
    conn = connect(path, readonly=True)
    try:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = conn.execute(
            "SELECT item_id FROM transcripts WHERE body IS NOT NULL AND item_id LIKE ? "
            "ESCAPE '\\' ORDER BY item_id LIMIT ?",
            (escaped + "%", limit),
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [row[0] for row in rows]

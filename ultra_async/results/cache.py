"""The response cache: chat completions addressed by a digest of what was asked.

The key is a BLAKE2b digest of (model, messages, generation parameters); the shard, key and
deployment are not part of it, so any shard of a model can answer from it. The value is the
reply: content, token usage, finish reason and the latency it was recorded with. Each entry
carries a checksum of its key and value, so damage is detected and never served.

One SQLite file (`cache.sqlite`) in WAL mode: a commit is atomic and survives kill -9, so a
write cut short is rolled back, never read.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from ..errors import StorageError
from ..types import ChatResponse, Message
from .transcripts import connect

CACHE_FILE = "cache.sqlite"
CacheMode = Literal["off", "use", "refresh", "only"]
CACHE_MODES: tuple[CacheMode, ...] = ("off", "use", "refresh", "only")
#: changes whenever the key's recipe changes, so old entries simply stop matching
_KEY_VERSION = "ultra_async.cache.v1"

log = structlog.get_logger("ultra_async.results.cache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key BLOB PRIMARY KEY,
    model TEXT NOT NULL,
    body BLOB NOT NULL,
    checksum BLOB NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (out_dir TEXT PRIMARY KEY, last_used REAL NOT NULL);
"""


def cache_key(model: str, messages: Sequence[Message], params: Mapping[str, Any]) -> bytes:
    """The 16-byte digest of one request: model, messages and generation parameters."""
    payload = orjson.dumps(
        [_KEY_VERSION, model, params, messages],
        default=_plain,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.blake2b(payload, digest_size=16).digest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list):
        return list(value)
    raise TypeError(f"cannot use a {type(value).__name__} in a cache key")


def cache_path(out_dir: Path, cache_dir: Path | None = None) -> Path:
    """The cache file of a results directory: its own, or the shared one in `cache_dir`."""
    return Path(cache_dir if cache_dir is not None else out_dir) / CACHE_FILE


def encode_value(response: ChatResponse) -> bytes:
    raw = orjson.dumps(
        [
            response.content,
            response.input_tokens,
            response.output_tokens,
            response.finish_reason,
            response.latency_s,
        ]
    )
    return b"z" + zlib.compress(raw, 6) if len(raw) > 256 else b"j" + raw


def decode_value(body: bytes) -> ChatResponse:
    raw = zlib.decompress(body[1:]) if body[:1] == b"z" else body[1:]
    content, input_tokens, output_tokens, finish_reason, latency_s = orjson.loads(raw)
    if not isinstance(content, str):
        raise TypeError("content is not a string")
    return ChatResponse(
        content=content,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        finish_reason=finish_reason if finish_reason is None else str(finish_reason),
        latency_s=float(latency_s),
    )


def checksum(key: bytes, body: bytes) -> bytes:
    return hashlib.blake2b(key + body, digest_size=8).digest()


@dataclass(slots=True)
class CacheStats:
    """Size of a cache file."""

    path: Path
    entries: int
    bytes: int


class ResponseCache:
    """One connection to a cache file. Not shared between threads at the same time."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.corrupt = 0
        try:
            if readonly:
                self._conn = connect(self.path, readonly=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = connect(self.path)
                self._conn.executescript(_SCHEMA)
            self._conn.execute("SELECT count(*) FROM entries LIMIT 1").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot use the response cache {self.path}: {exc}; move the file aside to "
                "start a new cache, or run with --cache off"
            ) from None

    def keys(self) -> set[bytes]:
        """Every key in the cache (loaded once per run, so lookups cost no disk access)."""
        return {row[0] for row in self._conn.execute("SELECT key FROM entries")}

    def get(self, key: bytes) -> ChatResponse | None:
        """The reply stored under `key`; None when absent, damaged or unreadable."""
        try:
            row = self._conn.execute(
                "SELECT body, checksum FROM entries WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._damaged(key, f"unreadable: {exc}")
            return None
        if row is None:
            return None
        body, check = row
        if checksum(key, body) != check:
            self._damaged(key, "checksum mismatch")
            return None
        try:
            return decode_value(body)
        except (ValueError, TypeError, zlib.error, orjson.JSONDecodeError) as exc:
            self._damaged(key, f"undecodable: {exc}")
            return None

    def _damaged(self, key: bytes, why: str) -> None:
        self.corrupt += 1
        log.warning("cache_entry_damaged", path=str(self.path), key=key.hex(), reason=why)

    def put_many(self, entries: Iterable[tuple[bytes, str, ChatResponse]]) -> int:
        """Store replies in one transaction (all or none); returns how many."""
        now = time.time()
        rows = []
        for key, model, response in entries:
            body = encode_value(response)
            rows.append((key, model, body, checksum(key, body), now))
        if rows:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows
                )
        return len(rows)

    def register_user(self, out_dir: Path) -> None:
        """Remember a results directory that refers to this cache (for `cache prune`)."""
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO users VALUES (?, ?)",
                (str(Path(out_dir).resolve()), time.time()),
            )

    def users(self) -> list[Path]:
        return [Path(row[0]) for row in self._conn.execute("SELECT out_dir FROM users")]

    def stats(self) -> CacheStats:
        (entries,) = self._conn.execute("SELECT count(*) FROM entries").fetchone()
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return CacheStats(self.path, int(entries), size)

    def prune(self, keep: set[bytes]) -> int:
        """Delete every entry whose key is not in `keep`; returns how many were deleted."""
        drop = [(k,) for k in self.keys() if k not in keep]
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM entries WHERE key = ?", drop)
        if drop:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
        return len(drop)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

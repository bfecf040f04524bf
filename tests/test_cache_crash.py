"""A cache torn by kill -9 or damaged on disk never serves a broken entry."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from ultra_async.errors import StorageError
from ultra_async.results.cache import ResponseCache
from ultra_async.types import ChatResponse

#: writes batches of large, incompressible entries until killed; prints the number committed
#: after each batch
WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from ultra_async.results.cache import ResponseCache
    from ultra_async.types import ChatResponse

    def content(i):
        return f"{i}:" + hashlib.shake_256(str(i).encode()).hexdigest(10_000)

    cache = ResponseCache(Path(sys.argv[1]))
    n = 0
    for batch in range(10_000):
        entries = []
        for _ in range(40):
            key = hashlib.blake2b(str(n).encode(), digest_size=16).digest()
            entries.append((key, "m", ChatResponse(content(n), n, 2 * n, "stop", 0.5)))
            n += 1
        cache.put_many(entries)
        print(n, flush=True)
    """
)


def expected(i: int) -> str:
    return f"{i}:" + hashlib.shake_256(str(i).encode()).hexdigest(10_000)


def key_of(i: int) -> bytes:
    return hashlib.blake2b(str(i).encode(), digest_size=16).digest()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_writer_killed_mid_write_leaves_only_whole_entries(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "cache.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    committed = 0
    try:
        for _ in range(random.Random(seed).randint(3, 15)):
            line = proc.stdout.readline()
            assert line, "the writer stopped early"
            committed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # most of the writer's time is inside a transaction
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    cache = ResponseCache(path)
    keys = cache.keys()
    # every batch reported committed is there, and nothing of a batch cut short
    assert len(keys) >= committed and len(keys) % 40 == 0
    for i in range(len(keys)):
        response = cache.get(key_of(i))
        assert response is not None and response.content == expected(i)
        assert (response.input_tokens, response.output_tokens) == (i, 2 * i)
    assert cache.get(key_of(len(keys))) is None and cache.corrupt == 0
    cache.close()


def test_a_damaged_entry_is_detected_and_never_served(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache.put_many([(key_of(i), "m", ChatResponse(expected(i), 1, 1, "stop")) for i in range(3)])
    conn = sqlite3.connect(path)
    body = conn.execute("SELECT body FROM entries WHERE key = ?", (key_of(1),)).fetchone()[0]
    flipped = body[:20] + bytes([body[20] ^ 0xFF]) + body[21:]
    conn.execute("UPDATE entries SET body = ? WHERE key = ?", (flipped, key_of(1)))
    conn.commit()
    conn.close()
    assert cache.get(key_of(1)) is None and cache.corrupt == 1
    response = cache.get(key_of(2))
    assert response is not None and response.content == expected(2)
    cache.close()


def test_a_cache_file_cut_in_half_is_refused_or_serves_only_whole_entries(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache.put_many([(key_of(i), "m", ChatResponse(expected(i), 1, 1, "stop")) for i in range(200)])
    cache.close()  # checkpoints the WAL into the main file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        torn = ResponseCache(path)
    except StorageError as exc:
        assert "cannot use the response cache" in str(exc)
        return
    served = [torn.get(key_of(i)) for i in range(200)]
    assert all(r is None or r.content == expected(i) for i, r in enumerate(served))
    torn.close()


def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match=r"cannot use the response cache .*--cache off"):
        ResponseCache(path)

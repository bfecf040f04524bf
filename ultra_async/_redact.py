"""The registry of secrets and the one function that removes them from text.

A secret is removed whole, and so is any run of `MIN_RUN` or more of its consecutive
characters: a key cut short by a truncation, or quoted in pieces, still leaks no 8 of its
characters. Key-shaped strings (`sk-…`, `Bearer …`) are removed from log text even when
nobody registered them.

Checking every position of a text against every part of every key would cost more than the
text is worth, so a cheap test runs first: any run of 8 bytes of a secret fully covers one of
the text's 4-byte chunks that start at a multiple of 4, so a text whose aligned chunks (read as
integers, in C) share none with the set of all 4-byte pieces of all secrets holds no leak.
Only a text that passes this test is scanned position by position.
"""

from __future__ import annotations

import re
import sys
import threading

#: the shortest part of a secret that counts as a leak
MIN_RUN = 8
_MARK = "[redacted]"
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+\S+)")

_lock = threading.Lock()
#: secrets shorter than MIN_RUN (replaced whole only)
_short: set[str] = set()
#: every MIN_RUN-character window of every secret
_windows: set[str] = set()
#: the cheap first test: every 4-byte piece of every secret, as a native unsigned int
_pieces: set[int] = set()


def register_secret(value: str) -> None:
    """Remember a secret: no text `redact` returns contains it, or 8 of its characters in a row."""
    global _short, _windows, _pieces
    if len(value) < 4:
        return
    # Copy on write: a thread redacting at the same moment keeps a consistent (older) set.
    with _lock:
        if len(value) < MIN_RUN:
            _short = _short | {value}
            return
        _windows = _windows | {value[i : i + MIN_RUN] for i in range(len(value) - MIN_RUN + 1)}
        data = value.encode("utf-8", "surrogatepass")
        _pieces = _pieces | {
            int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(len(data) - 3)
        }


def _may_hold(data: bytes) -> bool:
    """False when `data` cannot hold 8 consecutive bytes of a registered secret."""
    if not _pieces:
        return False
    usable = len(data) - len(data) % 4
    return not _pieces.isdisjoint(memoryview(data)[:usable].cast("I"))


def _starts(data: bytes) -> list[int]:
    """Where a run of a secret can start in ASCII `data`: around each place a 4-byte piece of a
    secret stands (a run of 8 starting at p holds the aligned chunk at q only if p <= q <= p+4;
    every place of a matching piece is taken, aligned or not, which only adds candidates)."""
    usable = len(data) - len(data) % 4
    found: set[int] = set()
    for value in _pieces.intersection(memoryview(data)[:usable].cast("I")):
        needle = value.to_bytes(4, sys.byteorder)
        at = data.find(needle)
        while at != -1:
            found.update(range(max(0, at - 4), at + 1))
            at = data.find(needle, at + 1)
    return sorted(found)


def _remove_runs(text: str, starts: list[int] | None = None) -> str:
    """`text` with every run of a secret replaced; only `starts` are tried when given."""
    out: list[str] = []
    start = 0
    last = len(text) - MIN_RUN
    positions = iter(starts if starts is not None else range(last + 1))
    for i in positions:
        if i < start:
            continue
        if i > last:
            break
        if text[i : i + MIN_RUN] in _windows:
            end = i + MIN_RUN
            # extend while the window ending one further is still a piece of some secret
            while end < len(text) and text[end - MIN_RUN + 1 : end + 1] in _windows:
                end += 1
            out.append(text[start:i])
            out.append(_MARK)
            start = end
    out.append(text[start:])
    return "".join(out)


def redact_secrets(text: str) -> str:
    """`text` without registered secrets (whole, or any 8 consecutive characters of one)."""
    data = text.encode("utf-8", "surrogatepass")
    if _may_hold(data):
        # in ASCII text a byte is a character, so the chunks that matched say where to look
        text = _remove_runs(text, _starts(data) if len(data) == len(text) else None)
    for secret in _short:
        if secret in text:
            text = text.replace(secret, _MARK)
    return text


def redact(text: str) -> str:
    """Registered secrets (and any 8-character run of one) and key-shaped strings removed."""
    return redact_secrets(_KEYLIKE.sub(_MARK, text))


def redact_bytes(data: bytes) -> bytes:
    """`redact_secrets` for UTF-8 bytes (journal lines); the same object when nothing matched."""
    if _may_hold(data) or any(s.encode("utf-8", "surrogatepass") in data for s in _short):
        return redact_secrets(data.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        )
    return data


assert memoryview(b"\0\0\0\0").cast("I").itemsize == 4, "the piece test needs 4-byte unsigned ints"

"""Logging setup: readable console lines for people, JSON lines in a file for machines.

Nothing is configured on import: scripts and notebooks that configure structlog themselves
keep their setup. The CLI and `ultra_async.run` call `configure_logging` when nothing else has.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SECRETS: set[str] = set()
#: the log file of the current configuration, closed when logging is configured again
_open_file: list[TextIO] = []
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+\S+)")


def register_secret(value: str) -> None:
    """Remember a secret so every log line that would contain it shows `[redacted]` instead."""
    if len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace registered secrets and key-shaped strings in `text`."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def _redact_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


class _Tee:
    """A JSON line per event for the log file; the console gets events at its own level."""

    def __init__(self, console: TextIO, console_level: int, file: TextIO | None) -> None:
        self._file = file
        self._console_level = console_level
        self._pretty = structlog.dev.ConsoleRenderer(colors=console.isatty())

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        if self._file is not None:
            self._file.write(orjson.dumps(event, default=str).decode() + "\n")
            self._file.flush()
        if _LEVELS.get(str(event.get("level", "info")), logging.INFO) < self._console_level:
            raise structlog.DropEvent
        return str(self._pretty(logger, name, dict(event)))


def _level(name: str) -> int:
    numeric = _LEVELS.get(name.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(_LEVELS)}")
    return numeric


def configure_logging(
    level: str = "info",
    *,
    log_file: Path | None = None,
    console: TextIO | None = None,
    console_level: str | None = None,
) -> None:
    """Send events at `level` and above to `log_file` (JSON lines) and to the console (stderr).

    `console_level` raises the console's threshold (e.g. "warning" under a live display).
    """
    numeric = _level(level)
    shown = max(numeric, _level(console_level)) if console_level else numeric
    out = console or sys.stderr
    while _open_file:
        _open_file.pop().close()
    file = log_file.open("a", encoding="utf-8") if log_file is not None else None
    if file is not None:
        _open_file.append(file)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_processor,
            _Tee(out, shown, file),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

"""Logging setup: readable console lines for people, JSON lines in a file for machines.

Nothing is configured on import: scripts and notebooks that configure structlog themselves
keep their setup. The CLI and `ultra_async.run` call `configure_logging` when nothing else has.

Two promises hold for every line this module writes:
- no secret: the finished text (console line, JSON line, traceback included) passes through
  `redact`, which removes every registered secret and any run of 8 or more of its characters;
- logging never stops an evaluation: a log file that cannot be written (a full disk) is
  given up with one line on stderr, and a console that cannot be written is skipped.
Tracebacks are rendered as plain text, never with local variables (they would show keys).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

from ._redact import redact, redact_bytes, redact_secrets, register_secret

__all__ = [
    "LEVEL_NAMES",
    "check_level",
    "configure_logging",
    "ensure_configured",
    "redact",
    "redact_bytes",
    "register_secret",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LEVEL_NAMES = tuple(_LEVELS)
#: the log file of the current configuration, closed when logging is configured again
_open_file: list[TextIO] = []


def _redact_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Field by field first, so the key-shape pattern sees each value whole; the finished
    # line is redacted again, which covers values inside lists, dicts and tracebacks.
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def _traceback_text(event: MutableMapping[str, Any]) -> str | None:
    """The event's exception as plain text (no local variables), removed from the event."""
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    if exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip()


def _json_line(record: MutableMapping[str, Any]) -> str:
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits
        return orjson.dumps({str(k): str(v) for k, v in record.items()}).decode()


class _Tee:
    """A JSON line per event for the log file; the console gets events at its own level."""

    def __init__(self, console: TextIO, console_level: int, file: TextIO | None) -> None:
        self._file = file
        self._console = console
        self._console_level = console_level
        try:
            colors = console.isatty()
        except (OSError, ValueError):
            colors = False
        self._pretty = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        tb = _traceback_text(event)
        if tb is not None:
            tb = redact(tb)
        if self._file is not None:
            record = dict(event, exception=tb) if tb is not None else event
            # Only registered secrets here: the key-shape pattern would eat JSON syntax.
            self._write_file(redact_secrets(_json_line(record)))
        if _LEVELS.get(str(event.get("level", "info")), logging.INFO) < self._console_level:
            raise structlog.DropEvent
        text = str(self._pretty(logger, name, dict(event)))
        if tb is not None:
            text = f"{text}\n{tb}"
        return redact(text)

    def _write_file(self, line: str) -> None:
        assert self._file is not None
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:
            # A full disk must not end the run: give the file up, say so once, carry on.
            file, self._file = self._file, None
            with contextlib.suppress(OSError, ValueError):
                file.close()
            reason = getattr(exc, "strerror", None) or str(exc)
            _Console(self._console).msg(
                f"warning: cannot write the log file {getattr(file, 'name', '?')} ({reason}); "
                "continuing without it"
            )


class _Console:
    """Writes rendered lines to a stream; a stream that fails (closed, full) is skipped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(message + "\n")
            self._stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg
    failure = err = msg


def check_level(name: str) -> int:
    """The numeric level of `name`; ValueError naming the allowed names otherwise."""
    numeric = _LEVELS.get(name.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {name!r}; use one of {', '.join(_LEVELS)}")
    return numeric


def ensure_configured() -> None:
    """Configure logging (warnings to stderr) unless the program already configured structlog.

    structlog's own default renders tracebacks with local variables, which would show keys.
    """
    if not structlog.is_configured():
        configure_logging("warning")


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
    numeric = check_level(level)
    shown = max(numeric, check_level(console_level)) if console_level else numeric
    out = console or sys.stderr
    while _open_file:
        with contextlib.suppress(OSError, ValueError):
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
        logger_factory=lambda *_args: _Console(out),
        cache_logger_on_first_use=False,
    )

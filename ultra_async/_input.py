"""Checks of raw input before it becomes configuration: the file, URLs, API keys.

Every problem becomes one line that names the file (or variable) and the field, never a
traceback, and never quotes a key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from ._redact import register_secret
from .errors import ConfigError

#: libyaml when installed: linear in the nesting depth, where the pure-Python parser is not
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: providers.yaml is read whole; a real one is a few kilobytes
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 20
MAX_VALUES = 100_000
#: problems of one kind listed before the rest are counted
_MAX_LINES = 20


def url_problem(value: str) -> str | None:
    """Why `value` is not a usable http(s) base URL, or None. Never quotes the value."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not value.startswith(parts.scheme + "://"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "needs a host, e.g. https://api.example.com/v1"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password; keys belong in the environment"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "must not have a query (?...) or a fragment (#...)"
    return None


def key_problem(value: str) -> str | None:
    """What makes `value` unusable as an API key (never quoting it), or None.

    A key is printable ASCII without spaces. Such a character is never stripped silently: a
    trailing newline usually means the variable was read from a file the wrong way, and a
    key that was edited in place is better fixed where it comes from.
    """
    bad = [i for i, c in enumerate(value) if not ("!" <= c <= "~")]
    if not bad:
        return None
    kinds = sorted(
        {
            "a line break"
            if value[i] in "\r\n"
            else "whitespace"
            if value[i].isspace()
            else "a control character"
            if not value[i].isprintable()
            else "a non-ASCII character"
            for i in bad
        }
    )
    places = sorted(
        {
            "at its end" if i >= len(value) - 2 else "at its start" if i < 2 else "inside"
            for i in bad
        }
    )
    return (
        f"the key holds {' and '.join(kinds)} ({', '.join(places)}); an API key is printable "
        "ASCII without spaces: set the variable again without them "
        "(docs/providers.md, API keys)"
    )


def key_lines(values: Mapping[str, str]) -> list[str]:
    """Register every key as a secret; one line `label: problem` per unusable key."""
    lines = []
    for label, value in values.items():
        # registered before anything can print it, also when it is refused below
        register_secret(value)
        problem = key_problem(value)
        if problem:
            lines.append(f"{label}: {problem}")
    return lines


def check_keys(values: Mapping[str, str]) -> None:
    """Register every key as a secret; ConfigError with one line per unusable key.

    `values` maps a label (the environment variable, or the key's name) to the key.
    """
    lines = key_lines(values)
    if lines:
        raise ConfigError("\n".join(lines))


def read_text(file: Path, label: str) -> str:
    """The file as text: at most MAX_FILE_BYTES of UTF-8 without NUL bytes, or ConfigError."""
    try:
        with open(file, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{label}: file not found; pass --providers PATH or set ULTRA_ASYNC_PROVIDERS"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{label}: larger than {MAX_FILE_BYTES // 1024} KiB; is this a providers file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{label}: holds NUL bytes, so it is not a text file")
    return text


def parse_yaml(label: str, text: str) -> Any:
    """The YAML document, which must be a mapping; ConfigError with one line otherwise."""
    try:
        raw = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{label}: {where}invalid YAML: {one_line(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping with keys, providers and models sections")
    return raw


_YAML_SPELLING = {math.inf: ".inf", -math.inf: "-.inf"}


def shape_problems(raw: Any) -> list[str]:
    """Non-finite numbers anywhere, nesting too deep, too many values (YAML aliases expand)."""
    problems: list[str] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(raw, ())]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return [f"more than {MAX_VALUES} values once YAML aliases are expanded"]
        if len(path) > MAX_DEPTH:
            return [f"{'.'.join(path[:3])}...: nested more than {MAX_DEPTH} levels deep"]
        if isinstance(node, float) and not math.isfinite(node):
            got = _YAML_SPELLING.get(node, ".nan")
            problems.append(f"{'.'.join(path)}: must be a finite number (got {got})")
            if len(problems) > _MAX_LINES:
                return [*problems[:_MAX_LINES], "... and more numbers that are not finite"]
        elif isinstance(node, dict):
            stack.extend((v, (*path, str(k))) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, (*path, str(i))) for i, v in reversed(list(enumerate(node))))
    return problems


def one_line(text: str) -> str:
    """`text` with line breaks and control characters shown as escapes: one line of output."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_validation_error(label: str, exc: ValidationError) -> str:
    """One line per problem: `file: dotted.field.path: reason`."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = one_line(".".join(str(part) for part in err["loc"]))
        msg = one_line(str(err["msg"]))
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/providers.md)"
        elif err["type"] == "greater_than":
            msg = f"must be > {err.get('ctx', {}).get('gt')}"
        elif err["type"] == "greater_than_equal":
            msg = f"must be >= {err.get('ctx', {}).get('ge')}"
        elif err["type"] == "less_than_equal":
            msg = f"must be at most {err.get('ctx', {}).get('le'):g}"
        elif err["type"] == "finite_number":
            msg = "must be a finite number"
        elif err["type"] == "too_long":
            msg = f"at most {err.get('ctx', {}).get('max_length')} entries"
        msg = msg[:1].lower() + msg[1:]
        # model-level messages already start with their own field path
        lines.append(f"{label}: {loc + ': ' if loc else ''}{msg}")
    return "\n".join(lines)

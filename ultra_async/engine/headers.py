"""What a server says about its limits: `x-ratelimit-*` headers in OpenAI's and Azure's forms.

OpenAI sends `x-ratelimit-limit-requests`/`-tokens` (per minute), `x-ratelimit-remaining-*`
and `x-ratelimit-reset-*` as durations (`6m0s`, `1s`, `20ms`, `1h2m3.5s`). Azure sends the
remaining counts and, on some deployments, resets as plain seconds (`"10"`, `"0.5"`). A value
that cannot be read is treated as absent: pacing is a help, never a reason to fail a request.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

# an OpenAI duration: any of hours, minutes, seconds (decimal) and milliseconds, in order
_DURATION = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?$"
)
#: a number this large is a Unix timestamp, not a duration
_EPOCH_AFTER = 1e9


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The server's view of its limits after a response (None where a header is absent)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None

    @property
    def empty(self) -> bool:
        return self == _NONE


_NONE = RateLimitHeaders()


def parse_duration_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds from `6m0s`, `1s`, `20ms`, `1.5`, or a Unix timestamp; None if unreadable."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number or number < 0:  # NaN or negative
            return None
        if number > _EPOCH_AFTER:
            return max(0.0, number - (time.time() if now is None else now))
        return number
    match = _DURATION.match(text)
    if match is None or not any(match.groupdict().values()):
        return None
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (
        parts.get("h", 0.0) * 3600
        + parts.get("m", 0.0) * 60
        + parts.get("s", 0.0)
        + parts.get("ms", 0.0) / 1000
    )


def _count(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = int(float(value))
    except ValueError:
        return None
    return number if number >= 0 else None


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitHeaders:
    """Read every `x-ratelimit-*` header there is; absent or unreadable ones stay None."""
    if "x-ratelimit-remaining-requests" not in headers and (
        "x-ratelimit-remaining-tokens" not in headers
    ):
        return _NONE
    return RateLimitHeaders(
        limit_requests=_count(headers, "x-ratelimit-limit-requests") or None,
        remaining_requests=_count(headers, "x-ratelimit-remaining-requests"),
        reset_requests_s=parse_duration_s(headers.get("x-ratelimit-reset-requests")),
        limit_tokens=_count(headers, "x-ratelimit-limit-tokens") or None,
        remaining_tokens=_count(headers, "x-ratelimit-remaining-tokens"),
        reset_tokens_s=parse_duration_s(headers.get("x-ratelimit-reset-tokens")),
    )


def server_level(remaining: int, limit_per_min: int | None, reset_s: float | None) -> float | None:
    """What a server's bucket holds, to the fraction, from its whole `remaining` count.

    OpenAI's reset is the time until the bucket is full again, so `reset · rate` is what it
    lacks: capacity - level. The capacity is a whole number between `remaining + lacking` and
    one more, so it is `ceil(remaining + lacking)`, and the level is that less `lacking`.
    None without a declared limit and a reset.
    """
    if not limit_per_min or reset_s is None:
        return None
    lacking = reset_s * limit_per_min / 60.0
    return math.ceil(remaining + lacking - 1e-9) - lacking


#: seconds over which a server's unstated request rate is measured from its headers
LEARN_WINDOW_S = 0.5


def shortfall_wait(
    remaining: float, needed: float, limit_per_min: float | None, reset_s: float | None
) -> float:
    """Seconds until a server with `remaining` units has `needed`, from its headers."""
    if remaining >= needed:
        return 0.0
    waits = []
    if limit_per_min:
        waits.append((needed - remaining) * 60.0 / limit_per_min)
    if reset_s is not None:
        waits.append(reset_s)
    return min(waits) if waits else 0.0

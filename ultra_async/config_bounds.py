"""The bounds every number in providers.yaml is held to, and ranges parsed into a `Range`.

A range is written `10` (fixed) or `{start: 50, max: 100, min: 1}` (adapted between min and max).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .types import Range

#: `qps` left out: no request-rate limit at all (a local server)
UNLIMITED = Range(start=math.inf, min=math.inf, max=math.inf)

# Upper bounds: far above any real provider, low enough that a typo cannot exhaust memory,
# stall the event loop or overflow a timer. docs/providers.md lists them.
MAX_WORKERS = 1000
MAX_QPS = 10_000.0
#: one request in about 17 minutes; below this a token bucket's timers stop making sense
MIN_QPS = 0.001
MAX_BURST = 1000
MAX_IN_FLIGHT = 10_000
MAX_TIMEOUT_S = 86_400.0
MAX_GRACE_S = 3600.0
MAX_ROUTES = 100


def parse_range(value: Any, *, integer: bool, upper: float, lower: float = 0.0) -> Range:
    """Accept `10` or `{start: 50, max: 100, min: 1}`."""
    try:
        return _range(value, integer=integer, upper=upper, lower=lower)
    except OverflowError:
        raise ValueError(f"must be at most {upper:g}") from None


def _range(value: Any, *, integer: bool, upper: float, lower: float) -> Range:
    if isinstance(value, bool):
        raise ValueError("must be a number or {start, max}")
    if isinstance(value, int | float):
        # a plain number is fixed: it never adapts, up or down
        start = maximum = float(value)
        minimum: float | None = start
    elif isinstance(value, Mapping):
        unknown = set(value) - {"start", "max", "min"}
        if unknown:
            raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: start, max, min")
        if "start" not in value:
            raise ValueError("needs start (and optionally max, min)")
        try:
            start = float(value["start"])
            maximum = float(value.get("max", start))
            minimum = float(value["min"]) if "min" in value else None
        except (TypeError, ValueError):
            raise ValueError("start, max and min must be numbers") from None
    else:
        raise ValueError("must be a number or {start, max}")
    if not all(math.isfinite(x) for x in (start, maximum, minimum or 1.0)):
        raise ValueError("must be a finite number")
    if start <= 0 or maximum <= 0 or (minimum is not None and minimum <= 0):
        raise ValueError("must be > 0")
    if maximum > upper:
        raise ValueError(f"must be at most {upper:g}")
    if maximum < start:
        raise ValueError(f"max ({maximum:g}) must be >= start ({start:g})")
    if minimum is None:
        minimum = min(start, 1.0)
    if minimum > start:
        raise ValueError(f"min ({minimum:g}) must be <= start ({start:g})")
    if integer and any(x != int(x) for x in (start, maximum, minimum)):
        raise ValueError("must be whole numbers")
    if minimum < lower:
        raise ValueError(f"must be at least {lower:g}")
    return Range(start=start, min=minimum, max=maximum)

"""The garbage collector's young-generation threshold while a run is under way.

Each request allocates a few dozen tracked objects (coroutines, futures, response objects)
that nearly all die by reference counting within milliseconds. With Python's default
threshold (700) the collector scans the young generation every dozen requests, and at 256
requests in flight most of what it scans is alive and must be traversed again: about 50 µs of
CPU per request, as much as the engine's own bookkeeping. A threshold of `YOUNG_THRESHOLD`
lets those objects die before any scan; a collection then still runs every few hundred
requests, so reference cycles are freed as before, only in larger batches.

Only the first threshold is changed, only upwards, and only while a run is under way: a
threshold the caller raised further, or a disabled collector, is left as it is.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: tracked allocations (net of deallocations) between two young-generation collections
YOUNG_THRESHOLD = 20_000
#: runs under way in this process that raised the threshold, and what it was before them
_raised: list[int] = []


@contextlib.contextmanager
def young_threshold(threshold: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """Raise the young-generation threshold to `threshold` for the body; restore it after.

    Runs may overlap (two engines in one notebook): the first raises it, the last restores it.
    """
    young, *older = gc.get_threshold()
    if not _raised and (young == 0 or young >= threshold):
        yield  # disabled or already higher: not ours to change
        return
    if not _raised:
        gc.set_threshold(threshold, *older)
    _raised.append(young)
    try:
        yield
    finally:
        before = _raised.pop()
        # a caller who changed it meanwhile keeps theirs
        if not _raised and gc.get_threshold()[0] == threshold:
            gc.set_threshold(before, *gc.get_threshold()[1:])

"""Database maintenance: check, rebuild and repair from the journal; invariants; comparisons.

Exit codes of `check` (also used by `python -m ultra_async db check`), lowest problem wins:
0 consistent; 3 database missing or not valid JSON; 4 wrong schema version or missing fields;
5 statistics invariants broken; 6 database disagrees with the journal; 7 journal damaged.

The work is done in `check.py` (the check and what the journal implies), `repair.py`
(rebuild, repair) and `invariants.py` (a document on its own, comparisons); this module is
where callers find it all, exit codes included.
"""

from __future__ import annotations

from ..exitcodes import (
    EXIT_INVARIANTS,
    EXIT_JOURNAL,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_SCHEMA,
    EXIT_UNREADABLE,
)
from .check import Report, check, load_tree, render
from .invariants import check_invariants, comparable
from .repair import rebuild, repair

__all__ = [
    "EXIT_INVARIANTS",
    "EXIT_JOURNAL",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "EXIT_SCHEMA",
    "EXIT_UNREADABLE",
    "Report",
    "check",
    "check_invariants",
    "comparable",
    "load_tree",
    "rebuild",
    "render",
    "repair",
]

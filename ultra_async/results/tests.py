"""One row per test from the journal: what `Results.tests()` turns into a DataFrame."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..types import TestResult
from .stats import FINAL_KINDS
from .storage import JOURNAL_FILE, JournalScan, iter_journal, raise_if_damaged

#: the columns every row starts with, before labels, metrics and details
BASE_COLUMNS: tuple[str, ...] = (
    "item_id",
    "model",
    "shard",
    "case_id",
    "instance",
    "outcome",
    "reason",
    "success_level",
    "score",
    "error_category",
    "input_tokens",
    "output_tokens",
    "cached_requests",
    "cost",
    "execution_time_s",
    "requests",
    "retries",
    "finished_at",
)


def counting_records(journal: Path) -> list[TestResult]:
    """The record that counts for each item, in journal order: its latest final record (a
    later one replaces an earlier only on purpose, as in the statistics), else its latest infra
    error."""
    scan = JournalScan()
    latest: dict[str, TestResult] = {}
    for entry in iter_journal(journal, scan):
        if not isinstance(entry, TestResult):
            continue
        previous = latest.get(entry.item_id)
        if (
            previous is not None
            and previous.outcome in FINAL_KINDS
            and (entry.outcome not in FINAL_KINDS or not _replaces(previous, entry))
        ):
            continue
        latest[entry.item_id] = entry
    raise_if_damaged(journal, scan)
    return list(latest.values())


def _replaces(old: TestResult, new: TestResult) -> bool:
    return old.outcome != "completed" or (
        bool(old.case_digest) and bool(new.case_digest) and old.case_digest != new.case_digest
    )


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def test_rows(out_dir: Path) -> Iterator[dict[str, Any]]:
    """One flat dict per test: base columns, `label.<dim>`-free labels, metrics, `details.*`."""
    for result in counting_records(Path(out_dir) / JOURNAL_FILE):
        row = {name: getattr(result, name) for name in BASE_COLUMNS}
        row.update(result.labels)
        row.update(result.metrics)
        _flatten("details", result.details, row)
        yield row


def tests_dataframe(out_dir: Path) -> Any:
    """The rows of `test_rows` as a pandas DataFrame (needs the analysis extra)."""
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        raise ImportError(
            "tests() needs pandas; install it with `pip install 'ultra_async[analysis]'`"
        ) from None
    return pandas.DataFrame(list(test_rows(out_dir)))

"""What the results viewer shows, as plain data: heatmap cells, tests, error causes, progress.

The heatmap comes from the database (exact aggregation, `rows.report_rows`) for every
dimension, with n and a 95 % Wilson interval per count rate. Tests come from the journal, read
incrementally (`JournalIndex`): one entry per work item, its latest record winning unless a
completed one came first (as in the statistics). Nothing here needs a suite's vocabulary: the
labels of a test are the database's dimensions, read from a record's `labels` or its fields.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import DatabaseError
from ..results.storage import DATABASE_FILE, JOURNAL_FILE, read_database
from .rows import dimensions_of, interval, metrics_of, per_model, report_rows, suite_of

#: a run that wrote its journal this recently is shown as running
ACTIVE_S = 20.0
#: at most this many tests are sent for one heatmap cell
CELL_LIMIT = 2000
_WORKFLOW_DIMS = ("prompt_type", "tool_success_rate", "difficulty", "task_type")


def _label(value: object) -> str:
    if isinstance(value, float):
        return f"{round(value, 4):g}"
    return "" if value is None else str(value)


def _kind(record: Mapping[str, Any], reason: str) -> str:
    """infra, request or evaluate: which part of a test failed."""
    outcome = str(record.get("outcome") or "")
    if outcome.endswith("_error") and outcome != "infra_error":
        return outcome.removesuffix("_error")
    if reason.startswith("evaluate raised"):
        return "evaluate"
    return "infra"


_NUMBER = re.compile(r"\b\d+(\.\d+)?(s|ms)\b")


def cause(reason: str) -> str:
    """A reason with its particulars dropped, so equal causes group (`… after 12.3s` → `Ns`)."""
    text = reason.strip().splitlines()[0] if reason.strip() else "unknown"
    if text.startswith("evaluate raised "):
        text = text.split(":", 1)[0]
    return _NUMBER.sub(lambda m: "N" + (m.group(2) or ""), text)[:120]


class JournalIndex:
    """The tests of a journal, kept up to date by reading only what was appended since."""

    def __init__(self, path: Path, dimensions: Sequence[str]) -> None:
        self.path = path
        self.dimensions = tuple(dimensions)
        self.tests: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self.mtime: float | None = None

    def refresh(self) -> None:
        """Read the lines appended since the last call; start over when the file was replaced."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self.tests.clear()
            self._offset, self._identity, self.mtime = 0, None, None
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self.tests.clear()
            self._offset, self._identity = 0, identity
        self.mtime = stat.st_mtime
        if stat.st_size == self._offset:
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            block = f.read(stat.st_size - self._offset)
        end = block.rfind(b"\n") + 1  # a torn last line waits for the rest
        self._offset += end
        for line in block[:end].splitlines():
            self._add(line)

    def _add(self, line: bytes) -> None:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict) or "item_id" not in record or "record" in record:
            return
        item_id = str(record["item_id"])
        previous = self.tests.get(item_id)
        if previous is not None and not _replaces(previous, record):
            return
        self.tests[item_id] = summarize(record, self.dimensions)


def _replaces(previous: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether `record` supersedes the item's shown record, as in the statistics: anything but
    an infra error is final; a final record is replaced only by another final one, after an
    error (a rerun of errors) or when the case changed (another digest)."""
    if previous["outcome"] == "infra_error":
        return True
    if record.get("outcome") == "infra_error":
        return False
    if previous["outcome"] != "completed":
        return True
    digest = record.get("case_digest")
    return bool(previous["digest"]) and bool(digest) and previous["digest"] != digest


def summarize(record: Mapping[str, Any], dimensions: Sequence[str]) -> dict[str, Any]:
    """The fields of a journal record the viewer lists (no `details`: they can be large)."""
    labels_field = record.get("labels")
    labels = labels_field if isinstance(labels_field, Mapping) else {}
    reason = str(record.get("reason") or record.get("infra_reason") or record.get("error") or "")
    outcome = str(record.get("outcome") or "")
    score = record.get("final_score", record.get("score"))
    return {
        "item_id": str(record["item_id"]),
        "model": str(record.get("model") or ""),
        "shard": str(record.get("shard") or ""),
        "outcome": outcome,
        "labels": {d: _label(labels.get(d, record.get(d))) for d in dimensions},
        "level": record.get("success_level") if outcome == "completed" else None,
        "score": score if isinstance(score, int | float) else None,
        "error": record.get("error_category"),
        "reason": reason or None,
        "kind": _kind(record, reason) if outcome != "completed" else None,
        "time_s": record.get("execution_time_s"),
        "requests": record.get("requests"),
        "tokens": int(record.get("input_tokens") or 0) + int(record.get("output_tokens") or 0),
        "finished_at": record.get("finished_at"),
        "digest": str(record.get("case_digest") or ""),
    }


def cell_tests(
    tests: Iterable[Mapping[str, Any]], model: str, dimension: str, value: str
) -> list[Mapping[str, Any]]:
    """The tests of one heatmap cell, failures first, at most CELL_LIMIT."""
    found = [t for t in tests if t["model"] == model and t["labels"].get(dimension) == value]
    found.sort(key=lambda t: (t["outcome"] == "completed", t["level"] or "", t["item_id"]))
    return found[:CELL_LIMIT]


def error_causes(tests: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """model → kind (infra, request, evaluate) → cause → tests whose latest record failed so."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for t in tests:
        if t["kind"] is not None:
            counts[t["model"], t["kind"], cause(t["reason"] or "")] += 1
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (model, kind, text), n in counts.most_common():
        out.setdefault(model, {}).setdefault(kind, {})[text] = n
    return out


def progress(index: JournalIndex, now_s: float | None = None) -> dict[str, Any]:
    """Per model and shard: tests finished, infra errors, tests/min over the last minute."""
    now_s = time.time() if now_s is None else now_s
    models: dict[str, dict[str, Any]] = {}
    for t in index.tests.values():
        model = models.setdefault(t["model"], {"done": 0, "infra": 0, "recent": 0, "shards": {}})
        shard = model["shards"].setdefault(t["shard"], {"done": 0, "infra": 0, "recent": 0})
        key = "done" if t["outcome"] == "completed" else "infra"
        recent = isinstance(t["finished_at"], int | float) and now_s - t["finished_at"] <= 60
        for node in (model, shard):
            node[key] += 1
            node["recent"] += int(recent)
    active = index.mtime is not None and now_s - index.mtime <= ACTIVE_S
    return {
        "active": active,
        "last_write_s": None if index.mtime is None else round(now_s - index.mtime, 1),
        "models": models,
    }


def heatmap(db: Mapping[str, Any]) -> dict[str, Any]:
    """Cells for every dimension: value, n, infra errors and a 95 % interval per rate (Wilson)
    and per mean of a counted metric (t), with the tests behind that mean."""
    dims = dimensions_of(db)
    tables: dict[str, list[dict[str, Any]]] = {}
    metrics: list[str] = []
    for dim in dims:
        cells = []
        for row in report_rows(db, dim):
            metrics = metrics or metrics_of(row)
            intervals = {m: _interval(row, m) for m in metrics}
            cells.append(
                {
                    "model": row["model"],
                    "value": row[dim],
                    "n": row["total"],
                    "infra": row.get("infra_errors", 0),
                    "few": row["few_tests"],
                    "metrics": {m: row.get(m) for m in metrics},
                    # tests behind a metric's mean where an outcome may leave it out
                    "counts": {m: row[f"n_{m[4:]}"] for m in metrics if f"n_{m[4:]}" in row},
                    "ci": {m: list(ci) for m, ci in intervals.items() if ci is not None},
                }
            )
        tables[dim] = cells
    return {"dimensions": list(dims), "metrics": metrics, "tables": tables}


def _interval(row: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """A rate's Wilson interval, or a mean's t-interval as `report_rows` put it in the row."""
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if metric.startswith("avg_") and low is not None and high is not None:
        return low, high
    return interval(row, metric)


def payload(out: Path, index: JournalIndex | None = None) -> dict[str, Any]:
    """Everything the page shows except the tests of a cell and transcripts."""
    path = out / DATABASE_FILE
    db = read_database(path) if path.exists() else None
    data: dict[str, Any] = {"title": _title(out), "generated_at": time.time()}
    if db is None:
        data.update(suite=None, dimensions=[], metrics=[], tables={}, models=[], summary={})
    else:
        data.update(heatmap(db), suite=suite_of(db), last_updated=db.get("last_updated"))
        stats = per_model(db)
        data["models"] = list(stats)
        counters = ("total", "infra_errors", "request_errors", "evaluate_errors", "total_errors")
        data["model_stats"] = {
            m: {k: s.get(k) for k in counters if k in s} for m, s in stats.items()
        }
        data["summary"] = db.get("summary") or {}
    if index is not None:
        index.refresh()
        data["errors"] = error_causes(index.tests.values())
        data["progress"] = progress(index)
        data["tests"] = len(index.tests)
    return data


def _title(out: Path) -> str:
    """The results directory as the user named it: relative to the working directory if inside."""
    try:
        return str(out.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(out)


def index_for(out: Path) -> JournalIndex:
    """A journal index of `out` labelled with its database's dimensions."""
    path = out / DATABASE_FILE
    dims: Sequence[str] = _WORKFLOW_DIMS
    if path.exists():
        try:
            dims = dimensions_of(read_database(path))
        except (DatabaseError, OSError):  # the page says so; the tests are still listed
            dims = _WORKFLOW_DIMS
    return JournalIndex(out / JOURNAL_FILE, dims)

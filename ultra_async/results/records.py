"""Journal records: one line per record, every field checked when read back, the first format
converted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from ..suites.workflow.dimensions import rate_key
from ..types import KINDS, RESULT_FIELDS, SUCCESS_LEVELS, TestResult

_DUMP_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def journal_line(result: TestResult, reported_model: str) -> bytes:
    """The journal line of a record (with its newline); `reported_model` when normalized."""
    # default=str: an odd value in `details` must not cost the result.
    if result.model == reported_model:
        return orjson.dumps(result, default=str, option=_DUMP_OPTIONS)
    record = result.to_record()
    record["reported_model"] = reported_model
    return orjson.dumps(record, default=str, option=_DUMP_OPTIONS)


def result_from_record(record: Mapping[str, Any]) -> TestResult:
    """Build a TestResult from a journal record; ValueError names the first bad field.

    Records of the first journal format (workflow fields at the top level) are converted.
    Unknown keys (from newer versions) are ignored.
    """
    if "labels" not in record and "prompt_type" in record:
        record = _from_workflow_record(record)
    values = {k: v for k, v in record.items() if k in RESULT_FIELDS}
    problem = _record_problem(values)
    if problem is not None:
        raise ValueError(problem)
    return TestResult(**values)


_TEXT = ("item_id", "model", "case_id", "shard")
_COUNTS = ("instance", "requests", "retries", "input_tokens", "output_tokens", "cached_requests")
_NUMBERS = ("execution_time_s", "finished_at", "cost")
_OPTIONAL_TEXT = ("reason", "error_category", "case_digest")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(values: Mapping[str, Any]) -> str | None:
    """Why a record's values cannot make a TestResult (None when they can)."""
    for name in _TEXT:
        if not isinstance(values.get(name), str) or not values[name]:
            return f"{name} is not a non-empty string"
    if values.get("outcome") not in KINDS:
        return f"outcome {values.get('outcome')!r} is not one of {', '.join(KINDS)}"
    labels = values.get("labels")
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        return "labels is not an object of strings"
    for name in _COUNTS:
        value = values.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} is not a whole number >= 0"
    for name in _NUMBERS:
        if name in values and not _is_number(values[name]):
            return f"{name} is not a finite number"
    for name in _OPTIONAL_TEXT:
        if values.get(name) is not None and not isinstance(values[name], str):
            return f"{name} is not a string"
    if values.get("success_level", "failure") not in SUCCESS_LEVELS:
        return f"success_level {values.get('success_level')!r} is not one of the three levels"
    score = values.get("score")
    if score is not None and not _is_number(score):
        return "score is not a finite number"
    metrics = values.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and _is_number(v) for k, v in metrics.items()
    ):
        return "metrics is not an object of finite numbers"
    if not isinstance(values.get("details", {}), dict):
        return "details is not an object"
    return None


#: the measures of the workflow benchmark, kept at the top level by the first journal format
WORKFLOW_METRICS: tuple[str, ...] = (
    "turns",
    "tool_calls",
    "tool_coverage_rate",
    "workflow_score",
    "phase2_score",
    "quality_score",
    "final_score",
)
_WORKFLOW_DIMENSIONS = ("prompt_type", "tool_success_rate", "difficulty", "task_type")


def _from_workflow_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record of the first journal format, where the workflow's fields sat at the top level."""
    out = dict(record)
    rate = out.pop("tool_success_rate", None)
    if not _is_number(rate):
        raise ValueError("tool_success_rate is not a number")
    labels = {
        "prompt_type": out.pop("prompt_type", None),
        "tool_success_rate": rate_key(rate),
        "difficulty": out.pop("difficulty", None),
        "task_type": out.pop("task_type", None),
    }
    for name in _WORKFLOW_DIMENSIONS:
        if not isinstance(labels[name], str) or not labels[name]:
            raise ValueError(f"{name} is not a non-empty string")
    out["labels"] = labels
    out["case_id"] = "/".join(labels[d] for d in _WORKFLOW_DIMENSIONS)
    metrics: dict[str, Any] = {}
    for name in WORKFLOW_METRICS:
        if name in out:
            metrics[name] = out.pop(name)
    out["metrics"] = metrics
    if out.get("outcome") == "completed":
        out["score"] = metrics.get("final_score")
    out["reason"] = out.pop("infra_reason", out.get("reason"))
    return out

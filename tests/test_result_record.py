"""TestResult built from an outcome: every field lands where its name says, and the journal line
is the record encoded once."""

from __future__ import annotations

from dataclasses import fields

import orjson

from ultra_async.results.aggregator import _journal_line
from ultra_async.types import TestOutcome, TestResult, WorkItem

ITEM = WorkItem("gpt-4o-mini", "optimal", 0.7, "hard", "data_pipeline", 4)


def distinct_outcome() -> TestOutcome:
    # a different value in every field, so a field read into the wrong slot shows
    values: dict[str, object] = {}
    for n, f in enumerate(fields(TestOutcome)):
        if f.name == "details":
            values[f.name] = {"trace": [n]}
        elif f.name in ("success_level", "error_category"):
            values[f.name] = f"{f.name}-value"
        elif f.type in ("int", int):
            values[f.name] = 100 + n
        else:
            values[f.name] = n + 0.25
    return TestOutcome(**values)  # type: ignore[arg-type]


def test_from_outcome_puts_every_field_in_its_place() -> None:
    outcome = distinct_outcome()
    result = TestResult.from_outcome(
        ITEM, "gpt-4o-mini-2", outcome, execution_time_s=1.5, requests=3, retries=1, finished_at=9.0
    )
    record = result.to_record()
    for f in fields(TestOutcome):
        assert record[f.name] == getattr(outcome, f.name), f.name
    assert record["item_id"] == ITEM.id
    assert (record["model"], record["prompt_type"], record["tool_success_rate"]) == (
        "gpt-4o-mini",
        "optimal",
        0.7,
    )
    assert (record["difficulty"], record["task_type"], record["instance"]) == (
        "hard",
        "data_pipeline",
        4,
    )
    assert (record["shard"], record["outcome"], record["infra_reason"]) == (
        "gpt-4o-mini-2",
        "completed",
        None,
    )
    assert (record["execution_time_s"], record["requests"], record["retries"]) == (1.5, 3, 1)
    assert record["finished_at"] == 9.0


def test_from_outcome_accepts_further_fields() -> None:
    result = TestResult.from_outcome(ITEM, "s", TestOutcome(), infra_reason="note")
    assert result.infra_reason == "note"


def test_infra_error_record() -> None:
    result = TestResult.infra_error(ITEM, "s", "HTTP 500", requests=6, retries=5)
    assert result.is_infra_error
    assert (result.infra_reason, result.requests, result.retries) == ("HTTP 500", 6, 5)
    assert result.success_level == "failure" and result.details == {}


def test_journal_line_is_the_record_on_one_line() -> None:
    result = TestResult.from_outcome(ITEM, "s", distinct_outcome())
    line = _journal_line(result, result.model)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == orjson.loads(orjson.dumps(result.to_record()))
    assert TestResult.from_record(orjson.loads(line)) == result


def test_journal_line_names_the_reported_model_when_it_was_normalized() -> None:
    result = TestResult.from_outcome(ITEM, "s", TestOutcome())
    line = orjson.loads(_journal_line(result, "gpt-4o-mini-3"))
    assert line["reported_model"] == "gpt-4o-mini-3" and line["model"] == "gpt-4o-mini"

"""TestResult built from an outcome: every field lands where its name says, and the journal line
is the record encoded once."""

from __future__ import annotations

import orjson

from ultra_async.results.records import journal_line as _journal_line
from ultra_async.results.records import result_from_record
from ultra_async.types import Case, Outcome, TestResult, WorkItem

CASE = Case("optimal/0.7/hard/data_pipeline", {"prompt_type": "optimal", "difficulty": "hard"})
ITEM = WorkItem("gpt-4o-mini", CASE, 4, "digest-1")


def distinct_outcome() -> Outcome:
    # a different value in every field, so a field read into the wrong slot shows
    return Outcome(
        success_level="partial_success",
        score=0.25,
        metrics={"turns": 3, "workflow_score": 0.5},
        error_category="timeout",
        details={"trace": [1]},
        input_tokens=101,
        output_tokens=102,
    )


def test_from_outcome_puts_every_field_in_its_place() -> None:
    outcome = distinct_outcome()
    result = TestResult.from_outcome(
        ITEM,
        "gpt-4o-mini-2",
        outcome,
        execution_time_s=1.5,
        requests=3,
        retries=1,
        finished_at=9.0,
        cached_requests=2,
    )
    record = result.to_record()
    expected = {
        "item_id": "gpt-4o-mini/optimal/0.7/hard/data_pipeline/4",
        "model": "gpt-4o-mini",
        "case_id": CASE.id,
        "instance": 4,
        "labels": dict(CASE.labels),
        "shard": "gpt-4o-mini-2",
        "outcome": "completed",
        "execution_time_s": 1.5,
        "requests": 3,
        "retries": 1,
        "reason": None,
        "finished_at": 9.0,
        "success_level": "partial_success",
        "score": 0.25,
        "metrics": {"turns": 3, "workflow_score": 0.5},
        "error_category": "timeout",
        "input_tokens": 101,
        "output_tokens": 102,
        "cached_requests": 2,
        "cost": 0.0,
        "case_digest": "digest-1",
        "details": {"trace": [1]},
    }
    assert record == expected
    assert list(record) == list(expected)


def test_from_outcome_accepts_further_fields() -> None:
    result = TestResult.from_outcome(ITEM, "s", Outcome(), reason="note")
    assert result.reason == "note"


def test_error_records() -> None:
    result = TestResult.infra_error(ITEM, "s", "HTTP 500", requests=6, retries=5)
    assert result.is_infra_error and not result.is_final
    assert (result.reason, result.requests, result.retries) == ("HTTP 500", 6, 5)
    assert result.success_level == "failure" and result.details == {}
    assert result.labels == dict(CASE.labels) and result.case_digest == "digest-1"
    refused = TestResult.request_error(ITEM, "s", "400 content_filter")
    assert refused.outcome == "request_error" and refused.is_final


def test_journal_line_is_the_record_on_one_line() -> None:
    result = TestResult.from_outcome(ITEM, "s", distinct_outcome())
    line = _journal_line(result, result.model)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == orjson.loads(orjson.dumps(result.to_record()))
    assert result_from_record(orjson.loads(line)) == result


def test_journal_line_names_the_reported_model_when_it_was_normalized() -> None:
    result = TestResult.from_outcome(ITEM, "s", Outcome())
    line = orjson.loads(_journal_line(result, "gpt-4o-mini-3"))
    assert line["reported_model"] == "gpt-4o-mini-3" and line["model"] == "gpt-4o-mini"

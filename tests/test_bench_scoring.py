"""Scoring, worked by hand: each expected number is derived in the comment above it."""

from __future__ import annotations

import pytest

from ultra_async.suites.workflow.scoring import (
    Call,
    Trace,
    executed_sequence,
    in_effect,
    lcs_length,
    level,
    score,
)
from ultra_async.suites.workflow.tools import INVALID_PARAMETERS

REQ = ("a", "b", "c")


def ok(tool: str, unmet: int = 0) -> Call:
    return Call(tool, True, None, unmet)


def fail(tool: str, code: str = "TIMEOUT", unmet: int = 0) -> Call:
    return Call(tool, False, code, unmet)


def test_lcs() -> None:
    assert lcs_length("abc", "abc") == 3
    assert lcs_length("abc", "cba") == 1
    assert lcs_length("abcde", "axbyc") == 3
    assert lcs_length("", "abc") == 0


def test_exact_sequence() -> None:
    # coverage 1, LCS 3/3, success 3/3, exact → workflow 0.4+0.3+0.2+0.1 = 1
    # achievement 0.6·1+0.4·1 = 1; quality 0.3·1+0.25·1 (4 turns ≤ 3+1)+0.25·1+0.2·1 = 1
    s = score(Trace(REQ, [ok("a"), ok("b"), ok("c")], turns=4, completed=True))
    assert (s.workflow_score, s.phase2_score, s.execution_quality) == (1.0, 1.0, 1.0)
    assert s.success_level == "full_success"
    assert s.error_category is None


def test_missing_tool() -> None:
    # coverage 2/3, LCS(abc, ac)=2 → 2/3, success 1, not exact
    # workflow = 0.4·2/3 + 0.3·2/3 + 0.2 = 0.666667
    # achievement = 0.6·2/3 + 0.4·1 (c, the output, ran) = 0.8
    # quality = 0.3 + 0.25·1 + 0.25·(2/max(3,2)) + 0.2 = 0.916667; phase2 = 0.858333
    s = score(Trace(REQ, [ok("a"), ok("c")], turns=3, completed=True))
    assert s.workflow_score == pytest.approx(0.666667)
    assert s.task_achievement == pytest.approx(0.8)
    assert s.execution_quality == pytest.approx(0.916667)
    assert s.phase2_score == pytest.approx(0.858333)
    assert s.success_level == "partial_success"
    assert s.error_category == "tool_selection"


def test_reversed_order() -> None:
    # coverage 1, LCS(abc, cba) = 1 → 1/3, success 1, not exact
    # workflow = 0.4 + 0.1 + 0.2 = 0.7
    # achievement 1; quality = 0.3 + 0.25 + 0.25·1/3 + 0.2 = 0.833333; phase2 = 0.916667
    s = score(Trace(REQ, [ok("c"), ok("b"), ok("a")], turns=4, completed=True))
    assert s.workflow_score == pytest.approx(0.7)
    assert s.phase2_score == pytest.approx(0.916667)
    assert s.success_level == "partial_success"
    assert s.error_category == "sequence_order"


def test_one_swap_with_everything_succeeding_is_still_full_success() -> None:
    # LCS(abc, bac) = 2: workflow = 0.4 + 0.2 + 0.2 + 0 = 0.8, exactly the threshold
    s = score(Trace(REQ, [ok("b"), ok("a"), ok("c")], turns=4, completed=True))
    assert s.workflow_score == 0.8
    assert s.success_level == "full_success"


def test_all_tools_failing() -> None:
    # the right calls in the right order: coverage 1, LCS 1, exact; success 0
    # workflow = 0.4 + 0.3 + 0 + 0.1 = 0.8; achievement 0 (nothing produced)
    # quality = 0.3·0 + 0.25·1 (3 turns ≤ 3) + 0.25·1 + 0.2·0 (no recovery) = 0.5; phase2 0.25
    trace = Trace(("a", "b"), [fail("a"), fail("b", unmet=1)], turns=3, completed=True)
    s = score(trace)
    assert s.workflow_score == pytest.approx(0.8)
    assert s.execution_quality == pytest.approx(0.5)
    assert s.phase2_score == pytest.approx(0.25)
    assert s.success_level == "partial_success"
    # b ran while a (its dependency) had not succeeded
    assert s.error_category == "dependency"
    no_deps = Trace(("a", "b"), [fail("a"), fail("b")], turns=3, completed=True)
    assert score(no_deps).error_category == "other"


def test_no_tool_calls() -> None:
    # nothing called: every component is 0 and execution quality is defined as 0
    s = score(Trace(REQ, [], turns=1, completed=True))
    assert (s.workflow_score, s.phase2_score, s.execution_quality) == (0.0, 0.0, 0.0)
    assert s.success_level == "failure"
    assert s.error_category == "tool_selection"
    formatless = Trace(REQ, [], turns=3, stop="format_errors", format_errors=3)
    assert score(formatless).error_category == "tool_call_format"


def test_retry_after_failure_keeps_the_sequence_exact() -> None:
    # a, b(fail), b, c: executed sequence folds the retry → exact; success 3/4
    # workflow = 0.4 + 0.3 + 0.2·0.75 + 0.1 = 0.95; recovery 1 (b recovered)
    calls = [ok("a"), fail("b"), ok("b"), ok("c")]
    assert executed_sequence(calls) == ["a", "b", "c"]
    s = score(Trace(REQ, calls, turns=5, completed=True))
    assert s.exact_sequence
    assert s.workflow_score == pytest.approx(0.95)
    assert s.success_level == "full_success"


def test_repeat_of_a_successful_call_is_not_a_retry() -> None:
    assert executed_sequence([ok("a"), ok("a"), ok("b")]) == ["a", "a", "b"]


def test_efficiency_counts_turns_beyond_one_per_tool_plus_completion() -> None:
    calls = [ok("a"), ok("b"), ok("c")]
    # ideal 4 turns; 10 used → efficiency 1 − 6/7; quality 0.3+0.25·(1/7)+0.25+0.2
    s = score(Trace(REQ, calls, turns=10, completed=True))
    assert s.execution_quality == pytest.approx(0.75 + 0.25 / 7)


def test_undone_results_do_not_count_as_achieved() -> None:
    calls = [ok("a"), ok("b"), Call("file_deleter", True, None, 0, ("b",))]
    assert in_effect(calls) == {"a", "file_deleter"}
    s = score(Trace(("a", "b"), calls, turns=4, completed=True))
    # achievement = 0.6·1/2 + 0.4·0 (b, the output, was deleted) = 0.3
    assert s.task_achievement == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("trace", "category"),
    [
        (Trace(REQ, [ok("a")], turns=2, stop="timeout"), "timeout"),
        (Trace(REQ, [ok("a"), ok("b")], turns=10, stop="max_turns"), "max_turns"),
        (Trace(REQ, [ok("a"), ok("x"), ok("c")], turns=4), "tool_selection"),
        (
            Trace(REQ, [ok("a"), fail("b", INVALID_PARAMETERS), fail("b"), ok("c")], turns=5),
            "parameter_config",
        ),
        (Trace(REQ, [ok("c"), ok("b"), ok("a")], turns=4), "sequence_order"),
        (Trace(REQ, [ok("a"), fail("b"), fail("b"), ok("c", unmet=1)], turns=5), "dependency"),
        (Trace(REQ, [ok("a"), fail("b"), fail("b"), ok("c")], turns=5), "other"),
    ],
)
def test_error_category_rules(trace: Trace, category: str) -> None:
    s = score(trace)
    assert s.success_level != "full_success"
    assert s.error_category == category


def test_level_thresholds() -> None:
    assert level(0.8, 0.8) == "full_success"
    assert level(0.8, 0.79) == "partial_success"
    assert level(0.49, 0.5) == "partial_success"
    assert level(0.49, 0.49) == "failure"

"""The tool success rule (dependency halving, clamp) and parameter checks."""

from __future__ import annotations

import random

import pytest

from ultra_async.suites.workflow.tools import load_tools, simulate_call, success_probability


class _Fixed(random.Random):
    """A Random whose draws are a fixed value, to probe the success threshold exactly."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("rate", "unmet", "expected"),
    [
        (0.8, 0, 0.8),
        (0.8, 1, 0.4),
        (0.8, 2, 0.2),
        (0.6, 3, 0.1),  # 0.075 clamped up
        (0.9, 5, 0.1),
        (1.0, 0, 0.95),  # clamped down
        (0.9, 0, 0.9),
    ],
)
def test_success_probability(rate: float, unmet: int, expected: float) -> None:
    assert success_probability(rate, unmet) == pytest.approx(expected)


def test_unmet_dependency_halves_the_chance() -> None:
    parser = load_tools()["csv_parser"]  # depends on file_reader
    assert parser.dependencies == ("file_reader",)
    # a draw of 0.45 passes p=0.8 but not p=0.4
    ok = simulate_call(parser, 0.8, {"file_reader"}, _Fixed(0.45))
    unmet = simulate_call(parser, 0.8, set(), _Fixed(0.45))
    assert ok.ok and ok.unmet_dependencies == 0 and ok.error is None
    assert not unmet.ok and unmet.unmet_dependencies == 1
    assert unmet.error in parser.errors


def test_seeded_success_frequency_matches_the_rule() -> None:
    tool = load_tools()["api_fetcher"]  # depends on auth_handler
    rng = random.Random(42)
    n = 20_000
    met = sum(simulate_call(tool, 0.7, {"auth_handler"}, rng).ok for _ in range(n)) / n
    halved = sum(simulate_call(tool, 0.7, set(), rng).ok for _ in range(n)) / n
    assert met == pytest.approx(0.7, abs=0.015)
    assert halved == pytest.approx(0.35, abs=0.015)


def test_failures_use_declared_error_codes_and_are_reproducible() -> None:
    tool = load_tools()["file_reader"]
    runs = [
        [simulate_call(tool, 0.6, set(), rng) for _ in range(200)]
        for rng in (random.Random(5), random.Random(5))
    ]
    assert runs[0] == runs[1]
    codes = {o.error for o in runs[0] if not o.ok}
    assert codes and codes <= set(tool.errors)


def test_parameter_check() -> None:
    tool = load_tools()["file_reader"]
    assert tool.check_params(None) is None
    assert tool.check_params({"path": "a.csv", "encoding": "utf-8"}) is None
    assert "unknown parameter 'filepath'" in (tool.check_params({"filepath": "a"}) or "")
    assert "missing required parameter 'path'" in (tool.check_params({"encoding": "x"}) or "")
    assert "must be a string" in (tool.check_params({"path": 3}) or "")
    flag = load_tools()["data_sorter"]
    # JSON booleans are not numbers or strings, and vice versa
    assert flag.check_params({"field": "date", "descending": 1}) is not None


def test_reverting_tools() -> None:
    tools = load_tools()
    assert tools["file_deleter"].reverts({"file_writer", "file_reader"}) == {"file_writer"}
    assert tools["workspace_cleaner"].reverts({"a", "b"}) == {"a", "b"}
    assert tools["file_reader"].reverts({"file_writer"}) == set()

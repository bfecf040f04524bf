"""The built-in dataset suite: reading files, scorers, templates, and a run from the CLI."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from ultra_async.errors import PlanError
from ultra_async.suites.dataset import SCORERS, build_messages, dataset_suite, simulate_answer

QUIZ = ROOT / "docs/examples/quiz.jsonl"


@pytest.mark.parametrize(
    ("scorer", "reply", "expected", "passed"),
    [
        ("exact", "  Paris. ", "paris", True),
        ("exact", "It is Paris", "Paris", False),
        ("includes", "It is PARIS, of course", "Paris", True),
        ("regex", "value: 42 units", r"\b42\b", True),
        ("numeric", "so the total is 1,250.0", "1250", True),
        ("numeric", "about 12", "13", False),
        ("choice", "I think the answer is (c)", "C", True),
        ("choice", "B", "C", False),
    ],
)
def test_scorers(scorer: str, reply: str, expected: str, passed: bool) -> None:
    assert SCORERS[scorer](reply, expected, 1e-6)[0] is passed


def test_rows_become_cases_with_ids_labels_and_templates(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("input,expected,lang\nhello,bonjour,fr\nthanks,merci,fr\n", encoding="utf-8")
    suite = dataset_suite(data, dimensions=["lang"], template="Translate: {input} ({lang})")
    cases = suite.load_cases()
    assert [c.labels for c in cases] == [{"lang": "fr"}] * 2
    assert cases[0].id.startswith("row-") and cases[0].id != cases[1].id
    assert build_messages(cases[0].data, "Be brief.", "Translate: {input} ({lang})") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate: hello (fr)"},
    ]
    no_dims = dataset_suite(data).load_cases()
    assert no_dims[0].labels == {"dataset": "d"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"input": "a"}\n', "lacks expected"),
        ('{"input": 3, "expected": "a"}\n', "input must be a string or a list"),
        ("not json\n", "line 1 is not valid JSON"),
        ('{"input": "a", "expected": "b"}\n', "no value for the dimension 'topic'"),
    ],
)
def test_bad_datasets_name_the_row(tmp_path: Path, content: str, problem: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(content, encoding="utf-8")
    with pytest.raises(PlanError, match=problem):
        dataset_suite(data, dimensions=["topic"])


def test_the_simulated_models_answer_at_their_skill() -> None:
    cases = dataset_suite(QUIZ, scorer="includes").load_cases()
    rng = random.Random(1)
    strong = sum(
        str(c.data["expected"]) in simulate_answer(c, "DeepSeek-V3-0324", rng) for c in cases * 5
    )
    weak = sum(
        str(c.data["expected"]) in simulate_answer(c, "qwen2.5-3b-instruct", rng) for c in cases * 5
    )
    assert strong > weak


def test_the_shipped_example_is_up_to_date() -> None:
    sys.path.insert(0, str(QUIZ.parent))
    try:
        import make_quiz  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert QUIZ.read_text(encoding="utf-8") == make_quiz.text()


@pytest.mark.slow
def test_a_dataset_run_from_the_command_line_tells_models_apart(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ultra_async", "run", "--dataset", str(QUIZ),
         "--dimensions", "topic,difficulty", "--scorer", "includes", "--simulate", "--quiet",
         "--models", "DeepSeek-V3-0324,qwen2.5-3b-instruct", "--instances", "3",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = orjson.loads((tmp_path / "master_database.json").read_bytes())
    assert db["suite"] == "dataset" and db["dimensions"] == ["topic", "difficulty"]
    rates = {m: v["overall_stats"]["success_rate"] for m, v in db["models"].items()}
    assert rates["DeepSeek-V3-0324"] > rates["qwen2.5-3b-instruct"] + 0.2
    assert set(db["models"]["DeepSeek-V3-0324"]["by_topic"]) == {"arithmetic", "capitals"}

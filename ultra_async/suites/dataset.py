"""The `dataset` suite: questions from a JSONL or CSV file, one request each, scored by a rule.

Each row has `input` (a string, or a list of chat messages), `expected`, an optional `id` (else
a digest of the row) and any other columns; the columns named as dimensions become the levels
of the database. docs/suites.md describes the scorers and the options.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..errors import PlanError
from ..types import Case, ChatFn, Outcome
from .suite import Suite

#: a scorer: (reply, expected, tolerance) → (passed, details)
Scorer = Callable[[str, str, float], tuple[bool, dict[str, Any]]]
_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_CHOICE = re.compile(r"\b([A-J])\b")
_ANSWER_CHOICE = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*\(?([A-J])\)?", re.IGNORECASE)
#: at most this much of a reply is kept in a test's details
REPLY_CHARS = 500


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def score_exact(reply: str, expected: str, tolerance: float) -> tuple[bool, dict[str, Any]]:
    """The reply equals the expected answer (case and spacing ignored)."""
    return _norm(reply).strip(" .") == _norm(expected).strip(" ."), {}


def score_includes(reply: str, expected: str, tolerance: float) -> tuple[bool, dict[str, Any]]:
    """The expected answer appears in the reply (case and spacing ignored)."""
    return _norm(expected) in _norm(reply), {}


def score_regex(reply: str, expected: str, tolerance: float) -> tuple[bool, dict[str, Any]]:
    """`expected` is a regular expression found in the reply."""
    try:
        return re.search(expected, reply) is not None, {}
    except re.error as exc:
        raise ValueError(
            f"expected {expected!r} is not a valid regular expression: {exc}"
        ) from None


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def score_numeric(reply: str, expected: str, tolerance: float) -> tuple[bool, dict[str, Any]]:
    """The last number in the reply is within `tolerance` (absolute) of the expected number."""
    try:
        want = float(expected)
    except ValueError:
        raise ValueError(f"expected {expected!r} is not a number") from None
    got = _last_number(reply)
    if got is None:
        return False, {"parsed": None}
    return math.isclose(got, want, rel_tol=0.0, abs_tol=tolerance), {"parsed": got}


def score_choice(reply: str, expected: str, tolerance: float) -> tuple[bool, dict[str, Any]]:
    """A multiple-choice letter: "Answer: B", "(B)", or the reply's first standalone letter."""
    match = _ANSWER_CHOICE.search(reply) or _CHOICE.search(reply.upper())
    got = match.group(1).upper() if match else None
    return got == expected.strip().upper()[:1], {"parsed": got}


SCORERS: dict[str, Scorer] = {
    "exact": score_exact,
    "includes": score_includes,
    "regex": score_regex,
    "numeric": score_numeric,
    "choice": score_choice,
}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL (`.jsonl`, `.json`) or CSV file; PlanError names a bad line."""
    if not path.is_file():
        raise PlanError(f"dataset {path} does not exist")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"dataset {path} is not UTF-8 text") from None
    except OSError as exc:
        raise PlanError(f"dataset {path} cannot be read: {exc.strerror}") from None
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        rows = [dict(row) for row in csv.DictReader(text.splitlines())]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise PlanError(f"dataset {path} line {lineno} is not valid JSON") from None
            if not isinstance(row, dict):
                raise PlanError(f"dataset {path} line {lineno} is not a JSON object")
            rows.append(row)
    if not rows:
        raise PlanError(f"dataset {path} has no rows")
    return rows


def _row_id(row: Mapping[str, Any]) -> str:
    body = orjson.dumps(row, option=orjson.OPT_SORT_KEYS, default=str)
    return "row-" + hashlib.blake2b(body, digest_size=8).hexdigest()


def dataset_cases(path: Path, dimensions: Sequence[str], *, name: str) -> list[Case]:
    """One case per row: `input`, `expected` and the other columns as data; dimension columns as
    labels (a suite without dimensions gets one, `dataset`, valued with the file's name)."""
    cases = []
    for n, row in enumerate(read_rows(path), 1):
        where = f"dataset {path} row {n}"
        if "input" not in row or "expected" not in row:
            raise PlanError(f"{where} lacks {'input' if 'input' not in row else 'expected'}")
        text = row["input"]
        if not (isinstance(text, str) or _is_messages(text)):
            raise PlanError(f"{where}: input must be a string or a list of chat messages")
        case_id = str(row["id"]) if row.get("id") not in (None, "") else _row_id(row)
        labels: dict[str, str] = {}
        for dim in dimensions:
            value = row.get(dim)
            if value is None or value == "":
                raise PlanError(f"{where} has no value for the dimension {dim!r}")
            labels[dim] = str(value)
        if not dimensions:
            labels["dataset"] = name
        cases.append(Case(case_id, labels, dict(row)))
    return cases


def _is_messages(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value)
    )


def dataset_suite(
    path: str | Path,
    *,
    dimensions: Sequence[str] = (),
    scorer: str = "exact",
    system_prompt: str | None = None,
    template: str | None = None,
    tolerance: float = 1e-6,
    name: str | None = None,
) -> Suite:
    """A suite of the rows of a JSONL/CSV file, scored by `scorer` (exact, includes, regex,
    numeric, choice). `template` formats a string input (`{input}` and any column); the
    simulator answers with the expected answer at each model's skill.
    """
    path = Path(path)
    if scorer not in SCORERS:
        raise PlanError(f"unknown scorer {scorer!r}; choose from: {', '.join(SCORERS)}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise PlanError(f"tolerance must be a finite number >= 0 (got {tolerance!r})")
    dims = [d.strip() for d in dimensions if d.strip()]
    cases = dataset_cases(path, dims, name=path.stem)
    if template is not None:
        _check_template(template, cases[0])
    score = SCORERS[scorer]

    async def evaluate(case: Case, chat: ChatFn) -> Outcome:
        row: Mapping[str, Any] = case.data
        reply = (await chat(build_messages(row, system_prompt, template))).content
        passed, details = score(reply, str(row["expected"]), tolerance)
        return Outcome.passed(
            passed,
            metrics={"reply_chars": len(reply)},
            details={"reply": reply[:REPLY_CHARS], "expected": row["expected"], **details},
        )

    def simulate(case: Case, model: str, rng: random.Random) -> str:
        return simulate_answer(case, model, rng, plain=scorer in ("exact", "regex"))

    return Suite(name or "dataset", dims or ["dataset"], cases, evaluate, simulate=simulate)


def build_messages(
    row: Mapping[str, Any], system_prompt: str | None, template: str | None
) -> list[dict[str, Any]]:
    """The request of one row: an optional system prompt, then the (templated) input."""
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    text = row["input"]
    if isinstance(text, list):
        messages.extend(dict(m) for m in text)
    else:
        content = template.format_map(_Fields(row)) if template else text
        messages.append({"role": "user", "content": content})
    return messages


class _Fields(dict[str, Any]):
    """Template fields: the row's columns; an unknown name stays as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _check_template(template: str, case: Case) -> None:
    try:
        template.format_map(_Fields(case.data))
    except (ValueError, IndexError) as exc:
        raise PlanError(f"--template {template!r} is not a valid template: {exc}") from None


def simulate_answer(case: Case, model: str, rng: random.Random, *, plain: bool = False) -> str:
    """The simulated model's reply: the expected answer with probability = the model's skill,
    else a plausible wrong one. `plain` replies with the answer alone (exact and regex scorers;
    for a regex, a row's `answer` column, if present, is the text that matches)."""
    from ..sim.behaviour import profile_for

    expected = (
        str(case.data.get("answer") or case.data["expected"])
        if plain
        else str(case.data["expected"])
    )
    if rng.random() < profile_for(model).skill:
        return expected if plain else f"The answer is {expected}."
    number = _last_number(expected)
    if number is not None:
        return f"The answer is {number + rng.choice((-2, -1, 1, 3)):g}."
    if len(expected.strip()) == 1 and expected.strip().upper() in "ABCDEFGHIJ":
        wrong = [c for c in "ABCD" if c != expected.strip().upper()]
        return f"The answer is {rng.choice(wrong)}."
    return "I am not sure; perhaps it is something else."

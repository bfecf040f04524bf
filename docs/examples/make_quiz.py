"""Write docs/examples/quiz.jsonl: a small generated dataset for `run --dataset`.

python docs/examples/make_quiz.py   # rewrites the file; a test checks it is up to date
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima",
    "Canada": "Ottawa", "Norway": "Oslo", "Egypt": "Cairo", "Chile": "Santiago",
    "Vietnam": "Hanoi", "Poland": "Warsaw", "Ghana": "Accra", "Nepal": "Kathmandu",
}  # fmt: skip
TARGET = Path(__file__).with_name("quiz.jsonl")


def rows() -> list[dict[str, object]]:
    """30 questions: arithmetic and capitals, easy and hard, each with a stable id."""
    rng = random.Random(2026)
    out: list[dict[str, object]] = []
    for n in range(18):
        hard = n % 2 == 1
        a, b = rng.randint(10, 99) * (37 if hard else 1), rng.randint(2, 9 if not hard else 99)
        out.append({"id": f"math-{n}", "input": f"What is {a} times {b}?", "expected": str(a * b),
                    "topic": "arithmetic", "difficulty": "hard" if hard else "easy"})  # fmt: skip
    for n, (country, capital) in enumerate(sorted(CAPITALS.items())):
        out.append({"id": f"capital-{n}", "input": f"What is the capital of {country}?",
                    "expected": capital, "topic": "capitals",
                    "difficulty": "easy" if n % 3 else "hard"})  # fmt: skip
    return out


def text() -> str:
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows())


if __name__ == "__main__":
    TARGET.write_text(text(), encoding="utf-8")
    print(f"wrote {TARGET} ({len(rows())} rows)")

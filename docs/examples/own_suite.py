"""An own evaluation with ultra_async: arithmetic questions, two dimensions, an own metric.

Run it with no API keys (the embedded simulator answers through `simulate`):

    python docs/examples/own_suite.py results/arithmetic

Then: `python -m ultra_async report --out results/arithmetic --by size`.
"""

from __future__ import annotations

import random
import re
import sys

import ultra_async as ua

OPERATIONS = {"add": "+", "multiply": "*"}


def cases() -> list[ua.Case]:
    """60 questions: two operations × small and large numbers, each with a stable id."""
    rng = random.Random(7)
    out = []
    for operation, symbol in OPERATIONS.items():
        for size, top in (("small", 20), ("large", 5000)):
            for n in range(15):
                a, b = rng.randint(2, top), rng.randint(2, top)
                answer = a + b if operation == "add" else a * b
                out.append(
                    ua.Case(
                        id=f"{operation}-{size}-{n}",
                        labels={"operation": operation, "size": size},
                        data={"question": f"What is {a} {symbol} {b}?", "answer": answer},
                    )
                )
    return out


async def evaluate(case: ua.Case, chat: ua.ChatFn) -> ua.Outcome:
    """Ask once, read the last number of the reply, score it."""
    reply = await chat(
        [{"role": "user", "content": case.data["question"] + " Reply with a number."}]
    )
    numbers = re.findall(r"-?\d+", reply.content)
    got = int(numbers[-1]) if numbers else None
    answer = case.data["answer"]
    return ua.Outcome.passed(
        got == answer,
        metrics={"abs_error": abs(got - answer) if got is not None else abs(answer)},
        error_category=None if got is not None else "no_number",
        details={"reply": reply.content, "answer": answer},
    )


def simulate(case: ua.Case, model: str, rng: random.Random) -> str:
    """The simulated models: bigger ones are better, and everyone is worse with large numbers."""
    skill = 0.9 if "72b" in model or model.startswith(("gpt", "o3")) else 0.6
    if case.labels["size"] == "large":
        skill -= 0.3
    answer = case.data["answer"]
    if rng.random() < skill:
        return f"The result is {answer}."
    if rng.random() < 0.2:
        return "I cannot compute that."
    return f"The result is {answer + rng.choice((-10, -1, 1, 100))}."


SUITE = ua.Suite(
    name="arithmetic",
    dimensions=["operation", "size"],
    cases=cases,
    evaluate=evaluate,
    simulate=simulate,
    error_categories=["no_number"],
)


def main(out: str) -> None:
    report = ua.run(
        SUITE,
        models="gpt-4o-mini,qwen2.5-72b-instruct,qwen2.5-7b-instruct",
        instances=1,
        simulate=True,
        out=out,
    )
    print(f"{report.summary.completed} tests, {report.summary.evaluate_errors} evaluate errors")
    tests = ua.load(out).tests()
    print(tests.groupby(["model", "size"])["abs_error"].mean().round(1).to_string())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/arithmetic")

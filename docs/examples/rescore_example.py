# %% [markdown]
# # Re-scoring a finished run without sending a request
#
# Every reply of a run is kept in the response cache of its results directory. Changing how
# tests are scored, then replaying the run with `cache="only"`, re-scores every test from the
# cached replies: zero requests, zero rate-limit waits. Run it as a script
# (`python docs/examples/rescore_example.py` from the repository root) or paste the cells into
# Jupyter (write `await ua.run(...)` there).

# %%
import dataclasses
from pathlib import Path

import ultra_async as ua

OUT = Path("results/rescore")
SUITE = ua.workflow_suite(prompt_types="optimal,baseline", seed=1)
RUN = {
    "models": "gpt-4o-mini,qwen2.5-7b-instruct",
    "instances": 2,
    "simulate": True,
    "seed": 1,
    "out": OUT,
}


def full_success_rate(results: ua.Results) -> float:
    stats = results.data["overall_stats"]
    return float(stats["full_success"]) / max(1, int(stats["total"]))


# %% the original evaluation: it sends the requests and fills the cache
first = ua.run(SUITE, **RUN, fresh=True)
before = full_success_rate(ua.load(OUT))
print(f"original: {first.summary.completed} tests, {first.summary.requests} requests")

# %% a stricter metric: full success now needs a workflow score of 0.95, not 0.8


async def strict(case: ua.Case, chat: ua.ChatFn) -> ua.Outcome:
    outcome = await SUITE.evaluate(case, chat)  # the same conversation, answered from the cache
    if outcome.success_level == "full_success" and outcome.metrics["workflow_score"] < 0.95:
        outcome = dataclasses.replace(outcome, success_level="partial_success")
    return outcome


STRICT = dataclasses.replace(SUITE, evaluate=strict)


# %% replay: a fresh database (the old one goes to a backup folder), replies from the cache
replay = ua.run(STRICT, **RUN, fresh=True, cache="only")
after = full_success_rate(ua.load(OUT))
print(
    f"replay: {replay.summary.completed} tests, {replay.summary.requests} requests, "
    f"{replay.summary.cached} answered from the cache, {replay.summary.infra_errors} misses"
)
print(f"full success: {before:.1%} with the old metric, {after:.1%} with the new one")

"""The statistics model: fields, exact sums, order independence, the infra-error and duplicate rules."""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest

from tests.fixtures.factory import completed, infra, items, stream
from ultra_async.results.db import check_invariants, comparable, render
from ultra_async.results.migrate import v3_leaf_vector
from ultra_async.results.stats import StatsTree
from ultra_async.results.vectors import INFRA, NODE_FIELDS, TOTAL, new_vector, node_fields
from ultra_async.types import TestResult


def document(results: list[TestResult]) -> dict[str, object]:
    tree = StatsTree()
    for r in results:
        tree.add_result(r)
    doc: dict[str, object] = orjson.loads(b"".join(render(tree, "created")))
    return doc


def test_empty_node_has_every_field_at_zero() -> None:
    fields = node_fields(new_vector())
    assert list(fields) == list(NODE_FIELDS)
    assert all(v == 0 for v in fields.values())


def test_counts_rates_and_means_of_one_leaf() -> None:
    item = items(1)[0]
    results = [
        dataclasses.replace(
            completed(dataclasses.replace(item, instance=i)),
            success_level=level,
            metrics={**completed(item).metrics, "workflow_score": score},
            error_category=None if level == "full_success" else "timeout",
        )
        for i, (level, score) in enumerate(
            [("full_success", 0.9), ("partial_success", 0.6), ("failure", 0.1), ("failure", 0.2)]
        )
    ]
    results.append(infra(dataclasses.replace(item, instance=9)))
    leaf = document(results)["models"]["gpt-4o-mini"]["by_prompt_type"]["optimal"][  # type: ignore[index]
        "by_tool_success_rate"
    ]["0.8"]["by_difficulty"]["easy"]["by_task_type"]["simple_task"]
    assert (leaf["total"], leaf["success"], leaf["full_success"]) == (4, 2, 1)
    assert (leaf["partial_success"], leaf["failure"], leaf["infra_errors"]) == (1, 2, 1)
    assert leaf["success_rate"] == 0.5
    assert leaf["weighted_success_score"] == 0.375
    assert leaf["avg_workflow_score"] == 0.45
    assert leaf["sum_workflow_score"] == 1.8
    assert leaf["total_errors"] == 3 and leaf["timeout_errors"] == 3
    assert leaf["timeout_error_share"] == 1.0


def test_statistics_do_not_depend_on_arrival_order() -> None:
    results = list(stream(instances=4))
    shuffled = results[:]
    random.Random(7).shuffle(shuffled)
    first, second = document(results), document(shuffled)
    first.pop("last_updated")
    second.pop("last_updated")
    # Identical including floating-point means: sums are exact integers in fixed point.
    assert first == second


def test_invariants_hold_at_every_node() -> None:
    results = list(stream(instances=3))
    results += [infra(item) for item in items(5)[-10:]]
    doc = document(results)
    assert check_invariants(doc) == []
    doc["models"]["gpt-4o-mini"]["overall_stats"]["total"] += 1  # type: ignore[index]
    problems = check_invariants(doc)
    assert problems and all(code == 5 for code, _ in problems)
    assert any("gpt-4o-mini" in message for _, message in problems)


def test_infra_error_counts_only_while_it_is_the_latest_record() -> None:
    item = items(1)[0]
    tree = StatsTree()
    assert tree.add_result(infra(item)) == "infra_error"
    assert tree.add_result(infra(item)) == "infra_repeat"
    assert tree.nodes[()][INFRA] == 1 and tree.nodes[()][TOTAL] == 0
    assert not tree.is_done(item.id)
    assert tree.add_result(completed(item)) == "completed"
    assert tree.nodes[()][INFRA] == 0 and tree.nodes[()][TOTAL] == 1
    assert tree.add_result(infra(item)) == "duplicate"
    assert tree.add_result(completed(item, seed=5)) == "duplicate"
    assert tree.nodes[()][TOTAL] == 1 and tree.done_ids() == {item.id}


def test_retried_infra_errors_give_the_same_statistics_as_a_clean_run() -> None:
    results = list(stream())
    noisy = [infra(r_item) for r_item in items()[:20]] + results
    assert comparable(document(noisy)) == comparable(document(results))


def test_instance_names_are_stored_under_the_real_model() -> None:
    item = items(1)[0]
    deep = dataclasses.replace(item, model="DeepSeek-V3-0324")
    from_instance = dataclasses.replace(completed(deep), model="DeepSeek-V3-0324-3")
    qwen = dataclasses.replace(item, model="qwen2.5-7b-instruct")
    from_key = dataclasses.replace(completed(qwen), model="qwen-key1")
    doc = document([from_instance, from_key])
    assert sorted(doc["models"]) == ["DeepSeek-V3-0324", "qwen2.5-7b-instruct"]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("leaf", "expected", "note"),
    [
        ({"total": 10, "success": 5, "partial": 2, "failed": 3}, (10, 5, 2, 3), None),
        ({"total": 10, "successful": 5, "partial": 2, "failed": 3}, (10, 5, 2, 3), None),
        ({"total": 10, "success": 7, "partial": 2, "failed": 3}, (10, 5, 2, 3), "included"),
        ({"total": 4, "success": 4}, (4, 4, 0, 0), None),
        ({"success": 2, "failed": 1}, (3, 2, 0, 1), None),
        ({"total": 9, "success": 2, "failed": 1}, (3, 2, 0, 1), "disagreed"),
    ],
)
def test_v3_leaves(
    leaf: dict[str, int], expected: tuple[int, int, int, int], note: str | None
) -> None:
    vector, missing, notes = v3_leaf_vector(leaf)
    fields = node_fields(vector)
    got = (fields["total"], fields["full_success"], fields["partial_success"], fields["failure"])
    assert got == expected
    assert fields["success"] + fields["failure"] == fields["total"]
    assert "avg_workflow_score" in missing and "timeout_errors" in missing
    assert (note is None and not notes) or (note is not None and note in notes[0])


def test_v3_means_become_sums() -> None:
    vector, missing, _ = v3_leaf_vector({"total": 4, "success": 4, "avg_workflow_score": 0.75})
    fields = node_fields(vector)
    assert fields["avg_workflow_score"] == 0.75 and fields["sum_workflow_score"] == 3.0
    assert "avg_workflow_score" not in missing

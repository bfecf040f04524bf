"""Statistics added a batch at a time equal those added one result at a time."""

from __future__ import annotations

from tests.fixtures.factory import completed, infra, items, stream
from ultra_async.results.stats import StatsTree


def test_a_batch_gives_exactly_the_nodes_of_one_by_one() -> None:
    work = items(3)
    results = [
        infra(work[0]),
        *stream(instances=3),
        completed(work[0], seed=7),  # a duplicate of a completed item
        infra(work[1]),  # an infra error after the item completed: changes nothing
        infra(work[-1]),
    ]
    one_by_one, batched = StatsTree(), StatsTree()
    kinds = [one_by_one.add_result(r) for r in results]
    assert batched.add_results(results) == kinds
    assert "infra_error" in kinds and "duplicate" in kinds
    assert batched.nodes == one_by_one.nodes
    assert batched.done_ids() == one_by_one.done_ids()
    full_one, full_batched = one_by_one.full_snapshot(), batched.full_snapshot()
    assert full_batched.changed == full_one.changed
    assert sorted(full_batched.added) == sorted(full_one.added)


def test_batches_in_any_split_agree() -> None:
    results = list(stream(instances=4))
    whole, parts = StatsTree(), StatsTree()
    whole.add_results(results)
    for start in range(0, len(results), 7):
        parts.add_results(results[start : start + 7])
    assert parts.nodes == whole.nodes

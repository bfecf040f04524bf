"""A workflow test's coordinates: the benchmark's four dimensions as typed values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ...types import Case, WorkItem
from .dimensions import rate_key

#: the workflow suite's dimensions, in database order
DIMENSIONS: tuple[str, ...] = ("prompt_type", "tool_success_rate", "difficulty", "task_type")


@dataclass(frozen=True, slots=True)
class WorkflowItem:
    """One workflow test: a cell of the matrix and the instance number within it.

    Its id equals the generic work item's id (`model/prompt/rate/difficulty/task/instance`),
    and its seeds are derived from that id, so tests are the same as in every earlier run.
    """

    model: str
    prompt_type: str
    tool_success_rate: float
    difficulty: str
    task_type: str
    instance: int

    @property
    def id(self) -> str:
        """Stable id: the same item has the same id in every run, on every machine."""
        return f"{self.model}/{self.case_id}/{self.instance}"

    @property
    def case_id(self) -> str:
        return (
            f"{self.prompt_type}/{rate_key(self.tool_success_rate)}/"
            f"{self.difficulty}/{self.task_type}"
        )

    @property
    def seed(self) -> int:
        """A 63-bit seed derived from the id, so each test's randomness is reproducible."""
        digest = hashlib.blake2b(self.id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def seed_with(self, run_seed: int) -> int:
        """The item's seed mixed with a run-level seed (`--seed`)."""
        digest = hashlib.blake2b(f"{run_seed}:{self.id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def case(self) -> Case:
        """The generic case of this cell."""
        return workflow_case(
            self.prompt_type, self.tool_success_rate, self.difficulty, self.task_type
        )

    def work_item(self) -> WorkItem:
        """The generic work item the engine runs."""
        return WorkItem(self.model, self.case(), self.instance)

    @classmethod
    def of(cls, item: WorkItem) -> WorkflowItem:
        """The workflow coordinates of a generic work item of the workflow suite."""
        labels = item.case.labels
        return cls(
            item.model,
            labels["prompt_type"],
            float(labels["tool_success_rate"]),
            labels["difficulty"],
            labels["task_type"],
            item.instance,
        )


def workflow_case(prompt_type: str, rate: float, difficulty: str, task_type: str) -> Case:
    """The case of one cell of the workflow matrix."""
    labels = {
        "prompt_type": prompt_type,
        "tool_success_rate": rate_key(rate),
        "difficulty": difficulty,
        "task_type": task_type,
    }
    return Case("/".join(labels[d] for d in DIMENSIONS), labels)


def workflow_item(
    model: str, prompt_type: str, rate: float, difficulty: str, task_type: str, instance: int
) -> WorkItem:
    """A generic work item of the workflow suite from its six coordinates."""
    return WorkItem(model, workflow_case(prompt_type, rate, difficulty, task_type), instance)

"""One test on one shard: its chat function, its deadline, and how it ended.

Every way a test can end becomes one TestResult: a result, an infra error (the API kept
failing, or the deadline), a request error (the API refused the request for good) or an
evaluate error (the suite's code raised or returned something that is not a valid outcome).
A shard that keeps failing, or whose key is refused, is marked dead and the test goes back to
the pool for a sibling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from .._redact import redact
from ..errors import InfraError, RequestRejectedError
from ..types import Evaluate, Outcome, TestResult, WorkItem
from .chat import BoundChat
from .deadlines import Deadlines
from .recording import Recording
from .shards import ModelPool, ShardState

log = structlog.get_logger("ultra_async.engine")

#: why an object returned by `evaluate` is not a valid outcome (None when it is)
CheckOutcome = Callable[[object], "str | None"]
#: a shard whose last this-many tests all exhausted their retries on 5xx/connection errors
#: hands its work to healthy siblings (a deployment that is down, not a passing blip)
FAILING_TESTS_BEFORE_YIELDING = 5


class TestRunner:
    """Runs single tests for one engine run; logs each distinct evaluate failure once."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        tag_requests: bool = False,
        recording: Recording | None = None,
        check: CheckOutcome | None = None,
    ) -> None:
        #: send each request's work item id as the `user` field (the embedded simulator reads it)
        self.tag_requests = tag_requests
        self._recording = recording
        self._check = check
        self._logged: set[str] = set()
        self._deadlines = Deadlines()

    def close(self) -> None:
        """The run is over: stop the deadlines' timer."""
        self._deadlines.close()

    async def run(
        self,
        state: ShardState,
        pool: ModelPool,
        item: WorkItem,
        evaluate: Evaluate,
        task: asyncio.Task[Any] | None = None,
    ) -> TestResult | None:
        """Run one test; None when the shard died under it and the item went back to the pool.

        `task` is the task running it (the current one by default), which its deadline cancels.
        """
        shard = state.shard
        deadline_s = state.retrier.policy.test_deadline_s
        started = time.monotonic()
        chat = BoundChat(state, item, started + deadline_s, tag=self.tag_requests, task=task)
        recorder = chat.recorder = (
            self._recording.recorder(chat, state) if self._recording is not None else None
        )
        deadline = self._deadlines.start(deadline_s, task)
        expired = False
        kind = "infra_error"
        details: dict[str, Any] = {}
        try:
            try:
                outcome = await evaluate(item, recorder or chat)
            finally:
                # True only for this deadline's own cancellation: a shutdown cancel arriving
                # in the same step still propagates as CancelledError
                expired = self._deadlines.finish(deadline)
        except asyncio.CancelledError:
            if not expired:
                raise
            reason = f"test exceeded its deadline of {deadline_s:g}s"
        except TimeoutError:
            if expired:
                reason = f"test exceeded its deadline of {deadline_s:g}s"
            else:
                kind = "evaluate_error"
                reason = "evaluate raised TimeoutError"
        except RequestRejectedError as error:
            state.request_errors += 1
            state.failing_streak = 0
            log.info(
                "test_request_error",
                model=shard.model,
                shard=shard.name,
                item=item.id,
                reason=error.reason,
            )
            kind = "request_error"
            reason = error.reason
            details = {"request_error": {"status": error.status, "code": error.code}}
        except InfraError as error:
            state.failing_streak = state.failing_streak + 1 if error.kind == "transient" else 0
            failing = state.failing_streak >= FAILING_TESTS_BEFORE_YIELDING and any(
                s.dead is None for s in pool.states if s is not state
            )
            if error.fatal or failing:
                if state.dead is None:
                    state.dead = (
                        error.reason
                        if error.fatal
                        else f"{state.failing_streak} tests in a row failed: {error.reason}"
                    )
                    log.warning(
                        "shard_dead", model=shard.model, shard=shard.name, reason=state.dead
                    )
                state.queue.appendleft(item)  # a sibling picks it up
                return None
            reason = error.reason
        except Exception as error:  # a bug in evaluate must not end the run
            kind = "evaluate_error"
            reason = _one_line(f"evaluate raised {type(error).__name__}: {error}")
            self._log_failure(reason, error, shard.model, item.id)
        else:
            problem = self._check(outcome) if self._check is not None else None
            if problem is None and not isinstance(outcome, Outcome):
                problem = f"evaluate returned {type(outcome).__name__}, not an Outcome"
            if problem is None:
                state.done += 1
                state.failing_streak = 0
                result = TestResult.from_outcome(
                    item,
                    shard.name,
                    outcome,
                    execution_time_s=round(time.monotonic() - started, 6),
                    requests=chat.requests,
                    retries=chat.retries,
                    finished_at=round(time.time(), 3),
                    cached_requests=recorder.cached if recorder is not None else 0,
                    cost=chat.cost,
                )
                if not outcome.input_tokens and not outcome.output_tokens:
                    result.input_tokens, result.output_tokens = chat.tokens()
                return recorder.finish(result) if recorder is not None else result
            kind = "evaluate_error"
            reason = _one_line(problem)
            self._log_failure(reason, None, shard.model, item.id)
        if kind == "infra_error":
            state.infra_errors += 1
            log.info(
                "test_infra_error", model=shard.model, shard=shard.name, item=item.id, reason=reason
            )
        elif kind == "evaluate_error":
            state.evaluate_errors += 1
        result = TestResult.error(
            kind,
            item,
            shard.name,
            redact(reason),
            execution_time_s=round(time.monotonic() - started, 6),
            requests=chat.requests,
            retries=chat.retries,
            finished_at=round(time.time(), 3),
            cached_requests=recorder.cached if recorder is not None else 0,
            cost=chat.cost,
            details=details,
        )
        return recorder.finish(result) if recorder is not None else result

    def _log_failure(
        self, reason: str, error: BaseException | None, model: str, item_id: str
    ) -> None:
        """Log each distinct evaluate failure once (with a compact traceback); count the rest."""
        if reason in self._logged:
            return
        self._logged.add(reason)
        where = _where(error) if error is not None else None
        log.warning("evaluate_failed", model=model, item=item_id, reason=reason, where=where)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _where(error: BaseException) -> str:
    """The innermost frame of a traceback as `file:line in function` (no locals, no source)."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"

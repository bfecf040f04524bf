"""The chat function a test's `evaluate` gets: bound to one shard's route, limits and retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ..errors import InfraError, RequestError
from ..types import ChatResponse, Message, WorkItem
from .headers import RateLimitHeaders
from .shards import ShardState
from .tokens import estimate_request_tokens

if TYPE_CHECKING:
    from .recording import Recorder

log = structlog.get_logger("ultra_async.engine.engine")


class BoundChat:
    """The chat function handed to `evaluate`: one shard's route, limits and retry loop."""

    __slots__ = (
        "_deadline",
        "_input_tokens",
        "_item",
        "_output_tokens",
        "_state",
        "_tag",
        "_task",
        "cost",
        "recorder",
        "requests",
        "retries",
    )

    def __init__(
        self,
        state: ShardState,
        item: WorkItem,
        deadline: float,
        *,
        tag: bool = False,
        task: asyncio.Task[Any] | None = None,
    ) -> None:
        self._state = state
        self._item = item
        self._deadline = deadline
        #: the task running the test (its requests' totals cancel it); None: the current one
        self._task = task
        self._tag = tag
        self._input_tokens = self._output_tokens = 0
        #: what this test's responses cost, from the model's `price` (0 without one)
        self.cost = 0.0
        self.requests = 0
        self.retries = 0
        #: told of every failed attempt, for the transcript (engine/recording.py)
        self.recorder: Recorder | None = None

    @property
    def item(self) -> WorkItem:
        """The work item this chat function runs (model, case, instance, seed)."""
        return self._item

    def tokens(self) -> tuple[int, int]:
        """Input and output tokens of this test's responses so far."""
        return self._input_tokens, self._output_tokens

    async def __call__(self, messages: Sequence[Message], **params: Any) -> ChatResponse:
        if self._tag and "user" not in params:
            params["user"] = self._item.id
        settings = self._state.settings
        body = params if settings.plain else settings.body(params)
        first_error: RequestError | None = None
        try:
            response = await self._attempt(messages, body)
        except RequestError as error:
            first_error = error  # retried outside this block: no exception context is kept
        if first_error is not None:
            response = await self._state.retrier.call(
                lambda: self._attempt(messages, body),
                deadline=self._deadline,
                on_retry=self._on_retry,
                first_error=first_error,
            )
        self.count(response)
        return response

    def count(self, response: ChatResponse) -> None:
        """Add a response's tokens to this test's (also one answered from the cache)."""
        self._input_tokens += response.input_tokens
        self._output_tokens += response.output_tokens

    async def _attempt(self, messages: Sequence[Message], body: dict[str, Any]) -> ChatResponse:
        """One request: the key's in-flight slot, room on the way, tokens, then the HTTP call.

        Slots come first: a request that took a bucket token and then waited for a slot
        would spend that token later, in a burst with every other waiter. One coroutine from
        the slots to the bookkeeping of the answer: every layer costs each request a frame.
        """
        state = self._state
        limits = state.limits
        in_flight = limits.key_in_flight
        if in_flight is not None and not in_flight.try_acquire():
            await in_flight.acquire()
        transit = limits.transit
        try:
            if transit is not None and not transit.try_acquire():
                await limits.enter_transit()
            try:
                if not limits.try_take_token():
                    await limits.take_token()
                reserved = 0
                if limits.counts_tokens:
                    reserved = estimate_request_tokens(messages, body)
                    await limits.reserve_tokens(reserved)
                if state.dead is not None:
                    # the shard died while this request waited for its turn: do not send it
                    limits.settle_tokens(reserved, 0)
                    raise InfraError(state.dead, fatal=True)
                state.requests += 1
                self.requests += 1
                sent_at = time.monotonic()
                limits.in_flight += 1
                try:
                    response, headers = await state.client.send(
                        state.endpoint,
                        messages,
                        body,
                        state.request_timeout,
                        state.request_total_s,
                        self._task,
                    )
                except RequestError as error:
                    limits.in_flight -= 1
                    self._refused(error, reserved, sent_at)
                    raise
                except BaseException:
                    limits.in_flight -= 1
                    limits.settle_tokens(reserved, None)
                    raise
            finally:
                if transit is not None:
                    transit.release()
        finally:
            if in_flight is not None:
                in_flight.release()
        limits.in_flight -= 1
        limits.admitted += 1
        if limits.room is not None:
            limits.room.record_latency(response.latency_s)
        if not headers.empty:
            # the headers count this request's whole reservation: read them before settling
            limits.observe(headers, reserved)
        used = response.input_tokens + response.output_tokens
        if reserved:
            limits.settle_tokens(reserved, used or None)
        price = state.settings.price
        if price is not None:
            cost = price.cost(response.input_tokens, response.output_tokens)
            state.cost += cost
            self.cost += cost
        limits.record_success()
        state.tokens += used
        return response

    def _refused(self, error: RequestError, reserved: int, sent_at: float) -> None:
        """Bookkeeping of a request that failed: its transcript, headers, tokens and pause."""
        if self.recorder is not None:
            self.recorder.failed(error)
        limits = self._state.limits
        refused = error.kind == "rate_limit"
        if isinstance(error.headers, RateLimitHeaders) and not error.headers.empty:
            limits.observe(error.headers, 0 if refused else reserved)
        if refused:
            self._state.rate_limited += 1
            limits.settle_tokens(reserved, 0)  # a refused request used nothing
            limits.record_rate_limited(error.retry_after_s, sent_at)
        else:
            limits.settle_tokens(reserved, None)  # the server may have counted it

    def _on_retry(self, error: RequestError, attempt_no: int, delay_s: float) -> None:
        self._state.retries += 1
        self.retries += 1
        log.debug(
            "request_retrying",
            model=self._state.shard.model,
            shard=self._state.shard.name,
            item=self._item.id,
            attempt=attempt_no,
            kind=error.kind,
            status=error.status,
            delay_s=round(delay_s, 3),
        )

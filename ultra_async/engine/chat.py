"""The chat function a test's `evaluate` gets: bound to one shard's route, limits and retries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ..errors import RequestError
from ..types import ChatResponse, Message, WorkItem
from .shards import ShardState

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
        "recorder",
        "requests",
        "retries",
    )

    def __init__(
        self, state: ShardState, item: WorkItem, deadline: float, *, tag: bool = False
    ) -> None:
        self._state = state
        self._item = item
        self._deadline = deadline
        self._tag = tag
        self._input_tokens = self._output_tokens = 0
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
        response = await self._call(messages, params)
        self.count(response)
        return response

    def count(self, response: ChatResponse) -> None:
        """Add a response's tokens to this test's (also one answered from the cache)."""
        self._input_tokens += response.input_tokens
        self._output_tokens += response.output_tokens

    async def _call(self, messages: Sequence[Message], params: dict[str, Any]) -> ChatResponse:
        try:
            return await self._attempt(messages, params)
        except RequestError as error:
            first_error = error
        return await self._state.retrier.call(
            lambda: self._attempt(messages, params),
            deadline=self._deadline,
            on_retry=self._on_retry,
            first_error=first_error,
        )

    async def _attempt(self, messages: Sequence[Message], params: dict[str, Any]) -> ChatResponse:
        """One request: tokens first, then the HTTP call; 429s feed the shard's controller."""
        state = self._state
        limits = state.limits
        if not limits.try_take_token():
            await limits.take_token()
        in_flight = limits.key_in_flight
        if in_flight is not None:
            await in_flight.acquire()
        state.requests += 1
        self.requests += 1
        shard = state.shard
        sent_at = time.monotonic()
        try:
            response, _ = await state.client.complete(
                shard.route,
                shard.api_model,
                state.key,
                messages,
                request_timeout=state.request_timeout,
                **params,
            )
        except RequestError as error:
            if self.recorder is not None:
                self.recorder.failed(error)
            if error.kind == "rate_limit":
                state.rate_limited += 1
                limits.record_rate_limited(error.retry_after_s, sent_at)
            raise
        finally:
            if in_flight is not None:
                in_flight.release()
        limits.record_success()
        state.tokens += response.input_tokens + response.output_tokens
        return response

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

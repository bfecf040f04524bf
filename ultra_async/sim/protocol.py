"""The wire format: OpenAI chat.completion bodies and OpenAI/Azure-style error bodies."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

JSON = "application/json"

#: the usual rule of thumb for English text with OpenAI-style tokenizers
CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    """Tokens in a text of `chars` characters (at least 1)."""
    return max(1, -(-chars // CHARS_PER_TOKEN))


def prompt_chars(messages: Iterable[Mapping[str, Any]]) -> int:
    """Characters of text content in a conversation (non-text parts are not counted)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
    return total


def parse_chat(
    raw: bytes, deployment: str | None
) -> tuple[str, list[dict[str, Any]], dict[str, Any]] | str:
    """(requested model, messages, body) from a request body, or why it is a bad request.

    On the Azure route the deployment in the path is the requested model.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "The body is not valid JSON."
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    requested = deployment if deployment is not None else body.get("model")
    if not isinstance(requested, str) or not requested:
        return "You must provide a model parameter."
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a list of message objects."
    return requested, messages, body


def completion_body(
    *,
    id_: str,
    created: int,
    model: str,
    content: str,
    prompt_tokens: int,
    max_tokens: Any = None,
) -> bytes:
    """A chat.completion response; a positive int `max_tokens` may cut it (finish_reason length)."""
    finish_reason = "stop"
    if (
        isinstance(max_tokens, int)
        and max_tokens > 0
        and len(content) > max_tokens * CHARS_PER_TOKEN
    ):
        content = content[: max_tokens * CHARS_PER_TOKEN]
        finish_reason = "length"
    completion_tokens = estimate_tokens(len(content)) if content else 0
    return orjson.dumps(
        {
            "id": id_,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def error_body(message: str, *, type_: str | None, code: str | None) -> bytes:
    """An error body in the OpenAI shape (Azure uses the same envelope)."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


INVALID_API_KEY = error_body(
    "Incorrect API key provided. Check the key sent in the Authorization or api-key header.",
    type_="invalid_request_error",
    code="invalid_api_key",
)
MISSING_API_VERSION = error_body(
    "The api-version query parameter (?api-version=) is required for all requests.",
    type_="invalid_request_error",
    code="MissingApiVersionParameter",
)
SERVER_ERROR = error_body(
    "The server had an error while processing your request. Sorry about that!",
    type_="server_error",
    code=None,
)
SERVICE_UNAVAILABLE = error_body(
    "The server is overloaded or not ready yet.", type_="server_error", code="service_unavailable"
)


def bad_request(message: str) -> bytes:
    """400: the request body is not what the API accepts."""
    return error_body(message, type_="invalid_request_error", code=None)


def deployment_not_found(deployment: str) -> bytes:
    """404 on the Azure route, as Azure words it."""
    return error_body(
        f"The API deployment {deployment} for this resource does not exist. If you created the "
        "deployment within the last 5 minutes, please wait a moment and try again.",
        type_="invalid_request_error",
        code="DeploymentNotFound",
    )


def model_not_found(model: str) -> bytes:
    """404 on the OpenAI route, as OpenAI words it."""
    return error_body(
        f"The model `{model}` does not exist or you do not have access to it.",
        type_="invalid_request_error",
        code="model_not_found",
    )


def rate_limited(retry_after_ms: int) -> bytes:
    """429: a server-side bucket is empty."""
    return error_body(
        f"Rate limit exceeded: too many requests for this key or deployment. "
        f"Please try again in {retry_after_ms}ms.",
        type_="requests",
        code="rate_limit_exceeded",
    )


def rate_limit_headers(wait_s: float, limit_rpm: str) -> dict[str, str]:
    """429 headers: Retry-After in whole seconds (at least 1) and retry-after-ms, precise."""
    return {
        "Retry-After": str(max(1, math.ceil(wait_s))),
        "retry-after-ms": str(max(1, math.ceil(wait_s * 1000.0))),
        "x-ratelimit-limit-requests": limit_rpm,
        "x-ratelimit-remaining-requests": "0",
    }


def status_body(status: int) -> bytes:
    """The body for a forced status: the usual one for statuses clients classify specially."""
    if status == 401:
        return INVALID_API_KEY
    if status == 429:
        return rate_limited(1000)
    if status == 503:
        return SERVICE_UNAVAILABLE
    if status >= 500:
        return SERVER_ERROR
    return error_body(
        f"Request failed with status {status}.", type_="invalid_request_error", code=None
    )

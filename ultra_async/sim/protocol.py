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


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    """The request's `max_completion_tokens` or `max_tokens`, when a positive int."""
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def cut_reply(content: str, max_tokens: Any) -> tuple[str, str, int]:
    """(content, finish_reason, completion tokens) once `max_tokens` has cut the reply."""
    finish_reason = "stop"
    if (
        isinstance(max_tokens, int)
        and max_tokens > 0
        and len(content) > max_tokens * CHARS_PER_TOKEN
    ):
        content = content[: max_tokens * CHARS_PER_TOKEN]
        finish_reason = "length"
    return content, finish_reason, estimate_tokens(len(content)) if content else 0


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
    content, finish_reason, completion_tokens = cut_reply(content, max_tokens)
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
    headers = {
        "Retry-After": str(max(1, math.ceil(wait_s))),
        "retry-after-ms": str(max(1, math.ceil(wait_s * 1000.0))),
        "x-ratelimit-remaining-requests": "0",
    }
    if limit_rpm:
        headers["x-ratelimit-limit-requests"] = limit_rpm
    return headers


def openai_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in `x-ratelimit-reset-*`: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60.0:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def azure_rate_limited(api_version: str, by_tokens: bool, wait_s: float) -> bytes:
    """429 as Azure OpenAI words it (the code is the string "429")."""
    what = "token rate limit" if by_tokens else "call rate limit"
    seconds = max(1, math.ceil(wait_s))
    return error_body(
        f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        f"{api_version} have exceeded {what} of your current OpenAI S0 pricing tier. Please "
        f"retry after {seconds} second{'s' if seconds != 1 else ''}. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further increase the default "
        "rate limit.",
        type_=None,
        code="429",
    )


def tokens_rate_limited(limit_tpm: int, requested: int, wait_s: float) -> bytes:
    """429 for a token limit, as OpenAI words it."""
    return error_body(
        f"Rate limit reached on tokens per min (TPM): Limit {limit_tpm}, Requested {requested}. "
        f"Please try again in {openai_duration(wait_s)}.",
        type_="tokens",
        code="rate_limit_exceeded",
    )


CONTENT_FILTERED = error_body(
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry.",
    type_=None,
    code="content_filter",
)


def context_length_exceeded(prompt_tokens: int, window: int = 128000) -> bytes:
    """400: the conversation does not fit the model's context window."""
    return error_body(
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {max(prompt_tokens, window + 1)} tokens. Please reduce the length of the "
        "messages.",
        type_="invalid_request_error",
        code="context_length_exceeded",
    )


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

"""The token estimate a request reserves before it is sent, with no tokenizer.

A request reserves `prompt estimate + completion allowance` from its shard's and key's TPM
buckets; the response's `usage` settles it (the difference is refunded or debited).

- prompt: per message, ceil(characters / 4) of its text plus 4 tokens of message framing
  (role, separators), the usual rule of thumb for English text with OpenAI-style tokenizers.
  It errs high for plain prose, so a reservation rarely has to be topped up;
- completion: the request's `max_completion_tokens` or `max_tokens`, else
  `DEFAULT_COMPLETION_TOKENS`. Setting `max_tokens` in `params` makes reservations exact
  bounds, as providers count it against TPM at admission.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
#: the completion allowance of a request that sets no max_tokens
DEFAULT_COMPLETION_TOKENS = 256


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return 0


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of a conversation (see the module docstring)."""
    total = 0
    for message in messages:
        chars = _text_chars(message.get("content"))
        total += -(-chars // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS
    return total


def estimate_request_tokens(messages: Sequence[Mapping[str, Any]], body: Mapping[str, Any]) -> int:
    """Prompt estimate plus the completion allowance of a request body."""
    allowance = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(allowance, int) or isinstance(allowance, bool) or allowance <= 0:
        allowance = DEFAULT_COMPLETION_TOKENS
    return estimate_prompt_tokens(messages) + allowance

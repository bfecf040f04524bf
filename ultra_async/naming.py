"""Map instance and shard names back to their real model (`DeepSeek-V3-0324-2` → the base)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: models of SPEC §1, known even without a providers.yaml (old data uses their names)
KNOWN_MODELS: tuple[str, ...] = (
    "qwen2.5-72b-instruct",
    "qwen2.5-32b-instruct",
    "qwen2.5-14b-instruct",
    "qwen2.5-7b-instruct",
    "qwen2.5-3b-instruct",
    "DeepSeek-V3-0324",
    "DeepSeek-R1-0528",
    "Llama-3.3-70B-Instruct",
    "o3-0416-global",
    "gemini-2.5-flash-06-17",
    "kimi-k2",
    "gpt-4o-mini",
    "gpt-5-mini",
)

_INSTANCE_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")
_VIRTUAL_KEY = re.compile(r"^(?P<prefix>.+)-key(?P<n>\d+)$")


class ModelNames:
    """Normalizes names: the explicit instance → model mapping first, then rules for old data."""

    def __init__(
        self,
        models: Iterable[str] = (),
        instances: Mapping[str, str] | None = None,
        virtual_prefixes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        known = [*models, *KNOWN_MODELS]
        self._canonical = {name.lower(): name for name in reversed(known)}
        self._instances = {k.lower(): v for k, v in (instances or {}).items()}
        self._prefixes = {p.lower(): tuple(ms) for p, ms in (virtual_prefixes or {}).items()}

    def normalize(self, name: str, model_hint: str | None = None) -> str:
        """The real model behind `name`; names it cannot place are returned unchanged.

        `model_hint` is the model a shard ran for; it resolves virtual key instances
        (`qwen-key1`) that several models share.
        """
        lowered = name.lower()
        if lowered in self._canonical:
            return self._canonical[lowered]
        if lowered in self._instances:
            return self._instances[lowered]
        virtual = _VIRTUAL_KEY.match(lowered)
        if virtual:
            if model_hint is not None:
                return self.normalize(model_hint)
            candidates = self._prefixes.get(virtual["prefix"], ())
            if len(candidates) == 1:
                return candidates[0]
            return name
        suffixed = _INSTANCE_SUFFIX.match(lowered)
        if suffixed and suffixed["base"] in self._canonical:
            return self._canonical[suffixed["base"]]
        return name

    def fixed(self, name: str) -> str | None:
        """The real model behind `name` when no hint can change it (None for a virtual key)."""
        if _VIRTUAL_KEY.match(name.lower()):
            return None
        return self.normalize(name)


_DEFAULT = ModelNames()


def normalize_model_name(name: str, model_hint: str | None = None) -> str:
    """Normalize with the built-in rules only (no providers.yaml); see `ModelNames`."""
    return _DEFAULT.normalize(name, model_hint)

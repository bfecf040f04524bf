"""The simulated models' skill profiles: how well each model plays the built-in benchmark."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class SkillProfile:
    """How a simulated model behaves; probabilities are per step or per reply."""

    skill: float
    format_error: float  # a reply without a valid tag
    follow: float  # executes a shown plan step as written
    choose: float  # picks the right tool for a sub-goal without a plan
    order: float  # keeps sub-goals in the right order without a plan
    params: float  # writes correct parameters when it writes them itself
    notice: float  # notices a flaw in a shown plan (scaled by how visible the flaw is)
    retry: float  # retries a failed call
    fix_params: float  # corrects its parameters after INVALID_PARAMETERS
    give_up: float  # declares completion instead of moving on when it stops retrying
    quit: float  # declares completion early, unprompted, on any reply
    batch: int  # tool calls per reply
    search_batch: int  # searches per reply
    info: float  # looks up the found tools' specs before calling them
    thinking: int  # words of reasoning in a <think> block (reasoning models)


def profile(skill: float, **overrides: Any) -> SkillProfile:
    """A profile derived from one overall skill in [0, 1], with explicit overrides."""
    weak = 1.0 - skill
    base = SkillProfile(
        skill=skill,
        format_error=0.35 * weak**1.5,
        follow=0.62 + 0.38 * skill,
        choose=0.5 + 0.5 * skill,
        order=0.7 + 0.3 * skill,
        params=0.5 + 0.5 * skill,
        notice=0.85 * skill**2,
        retry=0.35 + 0.65 * skill,
        fix_params=skill,
        give_up=0.6 * weak,
        quit=0.1 * weak**2,
        batch=3 if skill >= 0.85 else 2 if skill >= 0.6 else 1,
        search_batch=8 if skill >= 0.7 else 3 if skill >= 0.45 else 2,
        info=0.6 * skill,
        thinking=0,
    )
    return replace(base, **overrides)


PROFILES: dict[str, SkillProfile] = {
    "o3-0416-global": profile(0.94, thinking=60),
    "gpt-5-mini": profile(0.9, thinking=30),
    "DeepSeek-R1-0528": profile(0.88, thinking=90, format_error=0.03),
    "gemini-2.5-flash-06-17": profile(0.86),
    "DeepSeek-V3-0324": profile(0.85),
    "kimi-k2": profile(0.84),
    "qwen2.5-72b-instruct": profile(0.78),
    "qwen2.5-32b-instruct": profile(0.72),
    "Llama-3.3-70B-Instruct": profile(0.7),
    "gpt-4o-mini": profile(0.68),
    "qwen2.5-14b-instruct": profile(0.6),
    "qwen2.5-7b-instruct": profile(0.45),
    "qwen2.5-3b-instruct": profile(0.28),
}
DEFAULT_PROFILE = profile(0.6)
_BY_LOWER = {name.lower(): p for name, p in PROFILES.items()}
_INSTANCE = re.compile(r"-\d+$")


def profile_for(model: str) -> SkillProfile:
    """The profile of `model` (a deployment suffix like `-2` ignored); unknown names: default."""
    lowered = model.lower()
    return _BY_LOWER.get(lowered) or _BY_LOWER.get(_INSTANCE.sub("", lowered)) or DEFAULT_PROFILE

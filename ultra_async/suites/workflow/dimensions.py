"""The dimensions of the test matrix and their allowed values (SPEC §4)."""

from __future__ import annotations

BASE_PROMPT_TYPES: tuple[str, ...] = ("baseline", "cot", "optimal")
FLAWED_PROMPT_TYPES: tuple[str, ...] = (
    "flawed_sequence_disorder",
    "flawed_tool_misuse",
    "flawed_parameter_error",
    "flawed_missing_step",
    "flawed_redundant_operations",
    "flawed_logical_inconsistency",
    "flawed_semantic_drift",
)
PROMPT_TYPES: tuple[str, ...] = BASE_PROMPT_TYPES + FLAWED_PROMPT_TYPES
#: group names accepted wherever a list of prompt types is
PROMPT_TYPE_GROUPS: dict[str, tuple[str, ...]] = {
    "all": BASE_PROMPT_TYPES,
    "all_with_flawed": PROMPT_TYPES,
    "flawed": FLAWED_PROMPT_TYPES,
}

TOOL_SUCCESS_RATES: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)
DEFAULT_TOOL_SUCCESS_RATE = 0.8

DIFFICULTIES: tuple[str, ...] = ("very_easy", "easy", "medium", "hard", "very_hard")
DEFAULT_DIFFICULTY = "easy"

TASK_TYPES: tuple[str, ...] = (
    "simple_task",
    "basic_task",
    "data_pipeline",
    "api_integration",
    "multi_stage_pipeline",
)

SUCCESS_LEVELS: tuple[str, ...] = ("full_success", "partial_success", "failure")
ERROR_CATEGORIES: tuple[str, ...] = (
    "tool_call_format",
    "timeout",
    "max_turns",
    "tool_selection",
    "parameter_config",
    "sequence_order",
    "dependency",
    "other",
)


def rate_key(rate: float) -> str:
    """The database key of a tool success rate: the rate rounded, as a string (0.8 → "0.8")."""
    return f"{round(rate, 4):g}"

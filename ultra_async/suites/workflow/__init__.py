"""The built-in tool-use workflow benchmark: tools, tasks, prompts, execution and scoring.

`make_evaluate(run_seed)` gives the engine its evaluation coroutine; `evaluate(item, chat)` runs
one test. docs/benchmark.md describes the protocol, the prompt types and every formula.
"""

from .executor import evaluate, flaw_seed, make_evaluate
from .flaws import FLAWS, inject_flaw
from .prompts import MAX_TURNS, Prompt, build_prompt, system_prompt
from .protocol import Action, Event, Reply, parse_feedback, parse_reply
from .scoring import Call, Scores, Trace, lcs_length, score
from .search import ToolIndex, default_index
from .tasks import Step, Task, find_task, load_tasks, select_task, task_seed, tasks_for
from .tools import Param, Tool, load_tools, simulate_call, success_probability

__all__ = [
    "FLAWS",
    "MAX_TURNS",
    "Action",
    "Call",
    "Event",
    "Param",
    "Prompt",
    "Reply",
    "Scores",
    "Step",
    "Task",
    "Tool",
    "ToolIndex",
    "Trace",
    "build_prompt",
    "default_index",
    "evaluate",
    "find_task",
    "flaw_seed",
    "inject_flaw",
    "lcs_length",
    "load_tasks",
    "load_tools",
    "make_evaluate",
    "parse_feedback",
    "parse_reply",
    "score",
    "select_task",
    "simulate_call",
    "success_probability",
    "system_prompt",
    "task_seed",
    "tasks_for",
]

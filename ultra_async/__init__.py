"""ultra_async: large LLM evaluations against many rate-limited model APIs, in one event loop."""

from .api import Results, load, run, run_async, run_blocking, run_sync
from .config import Config, load_config
from .engine.engine import Engine, RunSummary
from .errors import (
    ConfigError,
    DatabaseError,
    InfraError,
    MissingKeysError,
    PlanError,
    RequestError,
    RequestRejectedError,
    StorageError,
    UltraAsyncError,
)
from .naming import ModelNames, normalize_model_name
from .planner import Matrix, Plan, build_matrix, build_shards, make_plan
from .results.aggregator import Aggregator
from .runner import RunOptions, RunReport, run_evaluation
from .types import ChatFn, ChatResponse, Route, Shard, TestOutcome, TestResult, WorkItem

__all__ = [
    "Aggregator",
    "ChatFn",
    "ChatResponse",
    "Config",
    "ConfigError",
    "DatabaseError",
    "Engine",
    "InfraError",
    "Matrix",
    "MissingKeysError",
    "ModelNames",
    "Plan",
    "PlanError",
    "RequestError",
    "RequestRejectedError",
    "Results",
    "Route",
    "RunOptions",
    "RunReport",
    "RunSummary",
    "Shard",
    "StorageError",
    "TestOutcome",
    "TestResult",
    "UltraAsyncError",
    "WorkItem",
    "build_matrix",
    "build_shards",
    "load",
    "load_config",
    "make_plan",
    "normalize_model_name",
    "run",
    "run_async",
    "run_blocking",
    "run_evaluation",
    "run_sync",
]
__version__ = "0.1.0"

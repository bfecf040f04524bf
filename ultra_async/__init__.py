"""ultra_async: large LLM evaluations against many rate-limited model APIs, in one event loop."""

from .config import Config, load_config
from .errors import (
    ConfigError,
    DatabaseError,
    InfraError,
    MissingKeysError,
    PlanError,
    RequestError,
    StorageError,
    UltraAsyncError,
)
from .naming import ModelNames, normalize_model_name
from .planner import Matrix, Plan, build_matrix, build_shards, make_plan
from .types import ChatFn, ChatResponse, Route, Shard, TestOutcome, TestResult, WorkItem

__all__ = [
    "ChatFn",
    "ChatResponse",
    "Config",
    "ConfigError",
    "DatabaseError",
    "InfraError",
    "Matrix",
    "MissingKeysError",
    "ModelNames",
    "Plan",
    "PlanError",
    "RequestError",
    "Route",
    "Shard",
    "StorageError",
    "TestOutcome",
    "TestResult",
    "UltraAsyncError",
    "WorkItem",
    "build_matrix",
    "build_shards",
    "load_config",
    "make_plan",
    "normalize_model_name",
]
__version__ = "0.1.0"

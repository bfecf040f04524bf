"""ultra_async: large LLM evaluations against many rate-limited model APIs, in one event loop."""

from .api import Results, arun, load, run
from .config import Config, load_config
from .engine import Engine, RunSummary
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
from .naming import normalize_model_name
from .results.transcripts import read_transcript
from .runner import RunReport
from .suites.dataset import dataset_suite
from .suites.suite import Suite
from .suites.workflow.suite import workflow_suite
from .types import Case, ChatFn, ChatResponse, Outcome, TestResult, WorkItem

__all__ = [
    "Case",
    "ChatFn",
    "ChatResponse",
    "Config",
    "ConfigError",
    "DatabaseError",
    "Engine",
    "InfraError",
    "MissingKeysError",
    "Outcome",
    "PlanError",
    "RequestError",
    "RequestRejectedError",
    "Results",
    "RunReport",
    "RunSummary",
    "StorageError",
    "Suite",
    "TestResult",
    "UltraAsyncError",
    "WorkItem",
    "arun",
    "dataset_suite",
    "load",
    "load_config",
    "normalize_model_name",
    "read_transcript",
    "run",
    "workflow_suite",
]
__version__ = "0.2.0"

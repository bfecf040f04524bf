"""Every request: workers, shard state, the bound chat function, limits, retries and HTTP."""

from .engine import Engine, RunSummary

__all__ = ["Engine", "RunSummary"]

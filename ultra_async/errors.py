"""The exception hierarchy of ultra_async. Every error message says what to do about it."""

from __future__ import annotations


class UltraAsyncError(Exception):
    """Root of every error ultra_async raises on purpose."""


class ConfigError(UltraAsyncError):
    """providers.yaml (or an override) is missing, malformed or inconsistent."""


class MissingKeysError(ConfigError):
    """API keys the plan needs are not set in the environment."""

    def __init__(self, variables: list[str]) -> None:
        self.variables = sorted(set(variables))
        names = ", ".join(self.variables)
        super().__init__(
            f"missing API keys: set {names} in the environment, "
            "or run with --simulate to use the embedded simulator"
        )


class PlanError(UltraAsyncError):
    """The requested test matrix names something that does not exist."""


class RequestError(UltraAsyncError):
    """One HTTP request to a model API failed; `retry` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
        detail: str | None = None,
        headers: object = None,
    ) -> None:
        super().__init__(message)
        #: one of "rate_limit", "transient", "fatal" (the route), "rejected" (this request)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        #: the provider's error code from the body, e.g. "insufficient_quota", "content_filter"
        self.code = code
        #: the provider's error message alone (secrets removed)
        self.detail = detail
        #: the response's parsed `x-ratelimit-*` headers, when there was a response
        self.headers = headers

    @property
    def retryable(self) -> bool:
        return self.kind not in ("fatal", "rejected")

    @property
    def route_fatal(self) -> bool:
        """True when no request on this route can succeed (bad key, missing deployment, quota)."""
        return self.kind == "fatal" and (
            self.status in (401, 403, 404) or self.code == "insufficient_quota"
        )


class InfraError(UltraAsyncError):
    """A test could not be completed because the API kept failing; not a model failure."""

    def __init__(
        self,
        reason: str,
        *,
        fatal: bool = False,
        status: int | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        #: the retry decision of the last failure: "rate_limit", "transient" or "fatal"
        self.kind = kind
        #: True when the failure is a property of the route (bad key, missing deployment),
        #: so the shard should stop taking work.
        self.fatal = fatal
        self.status = status


class RequestRejectedError(UltraAsyncError):
    """The API refused this request for good (content filter, context length, invalid body)."""

    def __init__(self, reason: str, *, status: int | None, code: str | None) -> None:
        super().__init__(reason)
        #: e.g. "400 content_filter: The response was filtered ..."
        self.reason = reason
        self.status = status
        self.code = code


class DatabaseError(UltraAsyncError):
    """The master database or the journal is unreadable or inconsistent."""


class StorageError(UltraAsyncError):
    """Results could not be written to the output directory."""

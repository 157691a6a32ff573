"""The small contract every API dialect implements, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.errors import RunctlError
from orchestrator.models import ErrorDetail, Run


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A run as the provider returned it, with the polling hint it sent (if any)."""

    run: Run
    poll_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: tuple[Run, ...]
    last_id: str | None
    has_more: bool


class ProviderError(RunctlError):
    """The provider answered with an error, or could not be reached.

    Carries only what is safe to publish: status, type, code, message and the server's
    retry hints; never a request header, so never a key. `retrying.py` alone decides what
    is worth another attempt.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.type = type
        self.code = code
        self.retry_after_s = retry_after_s
        self.should_retry = should_retry

    @property
    def detail(self) -> ErrorDetail:
        return ErrorDetail(
            http_status=self.http_status, type=self.type, code=self.code, message=self.message
        )


class ProviderUnreachable(ProviderError):
    """No HTTP answer: connection refused or reset, DNS, or a timeout."""


class RunsProvider(Protocol):
    """Cancel, retrieve and list runs. One pooled client per worker process."""

    def cancel(self, thread_id: str, run_id: str) -> ProviderReply: ...

    def retrieve(self, thread_id: str, run_id: str) -> ProviderReply: ...

    def list_runs(
        self, thread_id: str, *, after: str | None = None, limit: int = 100
    ) -> RunPage: ...

    def close(self) -> None: ...

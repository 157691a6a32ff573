"""The port the lifecycle talks to: the small contract every API dialect implements, the
errors it raises, and the facts of its statuses that the lifecycle needs (`Dialect`).

It lives in `core` because the lifecycle depends on it; the implementations, and all the
knowledge of one API's wire format, live in `orchestrator.providers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.errors import RunctlError
from orchestrator.core.models import ErrorDetail, Run


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the lifecycle must know of a dialect's statuses, as the provider spells them."""

    terminal: frozenset[str]  # the run will not change again
    cancelled: str  # the terminal status a cancel of ours leads to
    cancelling: str | None  # a cancel landed and is settling (not terminal), if it has one
    live: frozenset[str]  # a run worth stopping: what discovery lists by default
    # A 404 on cancel is ambiguous (langgraph answers it for a finished run and for one that
    # never existed): look at the run, then decide.
    look_after_missing_cancel: bool = False
    # Our cancel deletes the run (langgraph's rollback): a 404 after it is the cancel
    # succeeding, reported with this final_status; None: a 404 means not found.
    vanished: str | None = None

    def is_terminal(self, status: str | None) -> bool:
        return status is not None and status in self.terminal


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A run as the provider returned it, with the polling hint it sent (if any).

    `run` is None when the provider accepted a cancel with no body (langgraph's 202): the
    lifecycle then polls to learn where the run went.
    """

    run: Run | None
    poll_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: tuple[Run, ...]
    last_id: str | None
    has_more: bool


class ProviderError(RunctlError):
    """The provider answered with an error, or could not be reached.

    Carries only what is safe to publish: status, type, code, message and the server's
    retry hints; never a request header, so never a key. `core.retrying` alone decides
    what is worth another attempt.
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
        quota_exhausted: bool = False,
        refused_status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.type = type
        self.code = code
        self.retry_after_s = retry_after_s
        self.should_retry = should_retry
        # Set by the dialect, which alone knows its codes and texts:
        self.quota_exhausted = quota_exhausted  # about money, not speed: waiting won't heal it
        self.refused_status = refused_status  # "cannot cancel a run in status X": X

    @property
    def detail(self) -> ErrorDetail:
        return ErrorDetail(
            http_status=self.http_status, type=self.type, code=self.code, message=self.message
        )


class ProviderUnreachable(ProviderError):
    """No HTTP answer: connection refused or reset, DNS, or a timeout."""


class RunsProvider(Protocol):
    """Cancel, retrieve and list runs. One pooled client per worker process."""

    @property
    def dialect(self) -> Dialect: ...

    def cancel(self, thread_id: str | None, run_id: str) -> ProviderReply: ...

    def retrieve(self, thread_id: str | None, run_id: str) -> ProviderReply: ...

    def list_runs(
        self, thread_id: str, *, after: str | None = None, limit: int = 100
    ) -> RunPage: ...

    def close(self) -> None: ...

"""The nouns that cross a boundary: jobs in, runs from the provider, outcomes out.

Every model is frozen. Anything that comes from outside (a queued message, a provider
response) is parsed here, once, and refused with an error that names the field and the rule.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
ID_RULE = "must be 1 to 128 characters, each one of A-Z a-z 0-9 _ -"

# Bounds on a job's deadline: a job must have time for one request, and must finish well
# inside the broker's visibility timeout (see settings.visibility_timeout_s).
MIN_DEADLINE_S = 1.0
MAX_DEADLINE_S = 3600.0


def _check_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(ID_RULE)
    return value


SafeId = Annotated[str, AfterValidator(_check_id)]
"""An id that is safe to put in a URL path segment: it cannot climb, split or escape."""


class Provider(StrEnum):
    """The API dialect a job speaks; one module in `orchestrator.providers` per member."""

    ASSISTANTS = "assistants"  # OpenAI Assistants v2 and compatible servers


class Result(StrEnum):
    """How a cancel job ended: exactly one per job."""

    CANCELLED = "cancelled"  # the run reached `cancelled`
    ALREADY_TERMINAL = "already_terminal"  # the run ended otherwise; see final_status
    NOT_FOUND = "not_found"  # 404 for the thread or the run
    TIMED_OUT = "timed_out"  # still not terminal at the job's deadline
    REJECTED = "rejected"  # a permanent refusal: 401, 403, other 4xx, quota exhausted
    ERROR = "error"  # transient failures outlasted the retries or the deadline
    SKIPPED = "skipped"  # its bulk job was aborted before it could finish


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """`job_` and 128 random bits in hex (as a uuid4's hex, without building a UUID: a
    bulk job makes 100,000 of them)."""
    return f"job_{os.urandom(16).hex()}"


class CancelJob(BaseModel):
    """A request to stop one run. This, and only this, travels on the queue.

    It carries no credential: workers read the API key from their own environment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: SafeId = Field(default_factory=new_job_id)
    provider: Provider = Provider.ASSISTANTS
    thread_id: SafeId
    run_id: SafeId
    reason: str = Field(default="", max_length=500)
    requested_by: str = Field(default="", max_length=200)
    requested_at: datetime = Field(default_factory=utc_now)
    deadline_s: float = Field(default=120.0, ge=MIN_DEADLINE_S, le=MAX_DEADLINE_S)
    bulk_id: SafeId | None = None  # the bulk job this belongs to, if any


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class RunError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str | None = None
    message: str | None = None


class Run(BaseModel):
    """The provider's Run object, parsed tolerantly: unknown fields are ignored.

    `status` is the provider's own word: which words are terminal is the dialect's
    knowledge (`core.provider.Dialect`), so a new status never crashes a worker.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    thread_id: str | None = None
    status: str
    # Fields we only report are typed loosely: a provider's odd value must not cost a job.
    assistant_id: str | None = None
    model: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    expires_at: float | None = None
    cancelled_at: float | None = None
    failed_at: float | None = None
    completed_at: float | None = None
    last_error: RunError | None = None
    metadata: dict[str, Any] | None = None
    usage: Usage | None = None


class ErrorDetail(BaseModel):
    """The provider's error, as much of it as is safe to keep (never a header, never a key)."""

    model_config = ConfigDict(frozen=True)

    http_status: int | None = None
    type: str | None = None
    code: str | None = None
    message: str = ""


class Outcome(BaseModel):
    """What happened to one job: published exactly once."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    thread_id: str
    run_id: str
    result: Result
    final_status: str | None = None
    cancel_attempts: int = 0
    polls: int = 0
    requested_at: datetime
    finished_at: datetime
    duration_s: float
    error: ErrorDetail | None = None
    usage: Usage | None = None
    reason: str = ""
    bulk_id: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

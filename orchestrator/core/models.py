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


class Kind(StrEnum):
    """The API dialect a connection speaks; one module in `orchestrator.providers` each."""

    OPENAI_ASSISTANTS = "openai-assistants"  # Assistants v2 and compatible servers
    AZURE_OPENAI_ASSISTANTS = "azure-openai-assistants"  # classic Azure OpenAI Assistants
    AZURE_AI_AGENTS = "azure-ai-agents"  # Azure AI Foundry Agent Service
    LANGGRAPH = "langgraph"  # LangGraph Platform / self-hosted langgraph-api
    OPENAI_RESPONSES = "openai-responses"  # Responses in background mode: no threads


CONNECTION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONNECTION_RULE = "must be 1 to 64 characters, each one of A-Z a-z 0-9 _ -"
DEFAULT_CONNECTION = "openai"
"""The connection built from the OPENAI_* variables when runctl.toml names none."""
_LEGACY_PROVIDER = "assistants"  # what jobs queued before named connections carry


def _check_connection(value: str) -> str:
    if value == _LEGACY_PROVIDER:
        return DEFAULT_CONNECTION
    if not CONNECTION_PATTERN.fullmatch(value):
        raise ValueError(CONNECTION_RULE)
    return value


ConnectionName = Annotated[str, AfterValidator(_check_connection)]
"""The name of a `[providers.<name>]` table: which connection a job goes through."""


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

    It carries no credential, only the connection's name: workers read the key from their
    own environment. `thread_id` is None for a kind without threads (Responses), whose
    run is named by its id alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: SafeId = Field(default_factory=new_job_id)
    provider: ConnectionName = DEFAULT_CONNECTION
    thread_id: SafeId | None = None
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
    """What happened to one job: published exactly once.

    `provider` is the connection's name and `kind` its dialect; `final_status` is the
    provider's own word (e.g. langgraph's `interrupted`).
    """

    model_config = ConfigDict(frozen=True)

    job_id: str
    provider: str = DEFAULT_CONNECTION
    kind: str | None = None
    thread_id: str | None = None
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

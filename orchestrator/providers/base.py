"""What the dialects share: the port (re-exported from `core.provider`), the Assistants
family's statuses (OpenAI, Azure OpenAI and Foundry Agents speak them), refusal texts and
quota codes."""

from __future__ import annotations

import re
from enum import StrEnum

from orchestrator.core.provider import (
    Dialect,
    ProviderError,
    ProviderReply,
    ProviderUnreachable,
    RunPage,
    RunsProvider,
)

__all__ = [
    "ASSISTANTS_DIALECT",
    "QUOTA_CODES",
    "TERMINAL",
    "Dialect",
    "ProviderError",
    "ProviderReply",
    "ProviderUnreachable",
    "RunPage",
    "RunStatus",
    "RunsProvider",
    "refused_status",
]


class RunStatus(StrEnum):
    """A run's status in the Assistants family."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"  # waits for tool outputs; not terminal
    CANCELLING = "cancelling"  # a cancel landed; not terminal until it settles
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


TERMINAL: frozenset[RunStatus] = frozenset(
    {
        RunStatus.CANCELLED,
        RunStatus.FAILED,
        RunStatus.COMPLETED,
        RunStatus.INCOMPLETE,
        RunStatus.EXPIRED,
    }
)

ASSISTANTS_DIALECT = Dialect(
    terminal=frozenset(TERMINAL),
    cancelled=RunStatus.CANCELLED,
    cancelling=RunStatus.CANCELLING,
    live=frozenset({RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION}),
)

# 429s with these codes are about money, not speed: waiting will not heal them.
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})

_CANNOT_CANCEL = re.compile(r"Cannot cancel run with status '([A-Za-z_]+)'")


def refused_status(http_status: int, message: str) -> str | None:
    """The status named by a "Cannot cancel run with status 'X'." refusal, if it is one."""
    if not 400 <= http_status < 500:
        return None
    match = _CANNOT_CANCEL.search(message)
    return match.group(1) if match else None

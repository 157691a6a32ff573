"""What the dialects share: the port (re-exported from `core.provider`), the Assistants
family's statuses (OpenAI, Azure OpenAI and Foundry Agents speak them), refusal texts and
quota codes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.models import ID_PATTERN, ID_RULE, Kind
from orchestrator.core.provider import (
    Dialect,
    ProviderError,
    ProviderReply,
    ProviderUnreachable,
    RunPage,
    RunsProvider,
)
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.providers.credentials import Access

if TYPE_CHECKING:
    from orchestrator.providers._http import RequestObserver, ShardedClient

__all__ = [
    "ASSISTANTS_DIALECT",
    "QUOTA_CODES",
    "SAFE_ID",
    "TERMINAL",
    "UUID_ID",
    "Dialect",
    "IdRule",
    "KindSpec",
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


@dataclass(frozen=True)
class IdRule:
    """What a kind accepts as a thread or run id, and the rule said when it does not."""

    check: Callable[[str], bool]
    rule: str
    example: str  # a well-formed id nothing will match (`runctl providers check`)


SAFE_ID = IdRule(lambda v: ID_PATTERN.fullmatch(v) is not None, ID_RULE, "runctl_check")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


UUID_ID = IdRule(_is_uuid, "must be a UUID (8-4-4-4-12 hex digits)", str(uuid.UUID(int=1)))


@dataclass(frozen=True)
class KindSpec:
    """Everything the rest of the service needs to know of one kind: how a connection of
    it is checked and built, and what its ids and listings look like."""

    kind: Kind
    dialect: Dialect
    build: Callable[[Connection, Access, BuildOptions], RunsProvider]
    key_headers: Callable[[str], dict[str, str]]  # the headers that carry a key
    auths: frozenset[Auth]  # the credentials the kind accepts; the first is the default
    default_auth: Auth = Auth.KEY
    has_threads: bool = True  # False: a run is named by its id alone
    can_list: bool = True  # can a thread's runs be listed (discovery, watched threads)
    thread_id: IdRule = SAFE_ID
    run_id: IdRule = SAFE_ID
    default_api_version: str | None = None  # the Azure kinds send `api-version`
    azure_scope: str | None = None  # the Entra ID scope of auth = "azure"
    cancel_actions: bool = False  # accepts `cancel_action` (langgraph)


@dataclass(frozen=True)
class BuildOptions:
    """What every client is sized and timed by (from the process's settings), and where
    its requests are recorded (`make_provider` fills in the connection's name)."""

    max_connections: int
    read_timeout_s: float
    connect_timeout_s: float
    telemetry: Telemetry = NO_TELEMETRY
    connection_name: str = ""

    def http_client(
        self,
        base_url: str,
        access: Access,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> ShardedClient:
        """A connection's client: its credential (and any fixed `headers`), sized and timed
        by these options, each request told to the telemetry."""
        from orchestrator.providers._http import ShardedClient  # httpx: only when building

        return ShardedClient(
            base_url=base_url,
            headers={**(headers or {}), **access.headers},
            auth=access.auth,
            params=params,
            max_connections=self.max_connections,
            read_timeout_s=self.read_timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            observe=self.observer(),
        )

    def observer(self) -> RequestObserver | None:
        """What the client tells of each request: the telemetry, under the connection's name."""
        if self.telemetry is NO_TELEMETRY:
            return None
        return partial(self.telemetry.provider_request, self.connection_name)


def refused_status(http_status: int, message: str) -> str | None:
    """The status named by a "Cannot cancel run with status 'X'." refusal, if it is one."""
    if not 400 <= http_status < 500:
        return None
    match = _CANNOT_CANCEL.search(message)
    return match.group(1) if match else None

"""One module per API dialect, behind the `RunsProvider` protocol."""

from __future__ import annotations

from orchestrator.models import Provider
from orchestrator.providers.assistants import AssistantsProvider
from orchestrator.providers.base import (
    ProviderError,
    ProviderReply,
    ProviderUnreachable,
    RunPage,
    RunsProvider,
)
from orchestrator.settings import Settings

__all__ = [
    "AssistantsProvider",
    "ProviderError",
    "ProviderReply",
    "ProviderUnreachable",
    "RunPage",
    "RunsProvider",
    "make_provider",
]


def make_provider(provider: Provider, settings: Settings, *, max_connections: int) -> RunsProvider:
    """The client for a job's `provider` field."""
    match provider:
        case Provider.ASSISTANTS:
            return AssistantsProvider(settings, max_connections=max_connections)

"""One module per API dialect behind the `RunsProvider` port (`orchestrator.core.provider`)."""

from __future__ import annotations

from orchestrator.providers.assistants import AssistantsProvider
from orchestrator.providers.base import (
    Dialect,
    ProviderError,
    ProviderReply,
    ProviderUnreachable,
    RunPage,
    RunsProvider,
)
from orchestrator.providers.registry import make_provider

__all__ = [
    "AssistantsProvider",
    "Dialect",
    "ProviderError",
    "ProviderReply",
    "ProviderUnreachable",
    "RunPage",
    "RunsProvider",
    "make_provider",
]

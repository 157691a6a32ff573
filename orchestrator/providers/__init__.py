"""One module per API dialect behind the `RunsProvider` port (`orchestrator.core.provider`)."""

from __future__ import annotations

from orchestrator.providers.base import (
    Dialect,
    ProviderError,
    ProviderReply,
    ProviderUnreachable,
    RunPage,
    RunsProvider,
)
from orchestrator.providers.registry import check_connection, check_ids, make_provider, spec_of

__all__ = [
    "Dialect",
    "ProviderError",
    "ProviderReply",
    "ProviderUnreachable",
    "RunPage",
    "RunsProvider",
    "check_connection",
    "check_ids",
    "make_provider",
    "spec_of",
]

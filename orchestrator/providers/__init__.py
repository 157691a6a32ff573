"""One module per API dialect behind the `RunsProvider` port (`orchestrator.core.provider`).

The names below load on first use (PEP 562): importing `orchestrator.providers.base` (the
CLI does, for the statuses) does not load httpx and the dialects' clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.providers.base import (
        Dialect,
        ProviderError,
        ProviderReply,
        ProviderUnreachable,
        RunPage,
        RunsProvider,
    )
    from orchestrator.providers.registry import (
        check_connection,
        check_ids,
        make_provider,
        spec_of,
    )

_HOME_OF = {
    "Dialect": "orchestrator.providers.base",
    "ProviderError": "orchestrator.providers.base",
    "ProviderReply": "orchestrator.providers.base",
    "ProviderUnreachable": "orchestrator.providers.base",
    "RunPage": "orchestrator.providers.base",
    "RunsProvider": "orchestrator.providers.base",
    "check_connection": "orchestrator.providers.registry",
    "check_ids": "orchestrator.providers.registry",
    "make_provider": "orchestrator.providers.registry",
    "spec_of": "orchestrator.providers.registry",
}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator.providers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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

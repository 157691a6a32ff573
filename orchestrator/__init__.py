"""run-orchestrator: stop runs of Assistants-protocol agent platforms reliably.

The library never imports Celery; the Celery edge is the `workers` package, whose
`workers.producer.Producer` is the Python API for queueing cancels.

The names below are loaded on first use (PEP 562), so that `import orchestrator.x` (every
`runctl` command does) costs only what `x` needs: `from orchestrator import CancelJob` and
`orchestrator.CancelJob` work as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.core.errors import (
        ConfigurationError,
        InvalidInput,
        RedisUnavailable,
        RunctlError,
    )
    from orchestrator.core.lifecycle import Lifecycle, PollPolicy, Progress
    from orchestrator.core.models import (
        CancelJob,
        ErrorDetail,
        Kind,
        Outcome,
        Result,
        Run,
        Usage,
    )
    from orchestrator.core.retrying import RetryPolicy, is_retryable
    from orchestrator.core.settings import Settings, get_settings
    from orchestrator.providers import ProviderError, ProviderUnreachable, RunsProvider
    from orchestrator.providers.base import TERMINAL, RunStatus
    from orchestrator.store.admission import Submitted, build_job, submit

_HOMES = {
    "orchestrator.core.errors": ["ConfigurationError", "InvalidInput", "RedisUnavailable",
                                 "RunctlError"],
    "orchestrator.core.lifecycle": ["Lifecycle", "PollPolicy", "Progress"],
    "orchestrator.core.models": ["CancelJob", "ErrorDetail", "Kind", "Outcome", "Result",
                                 "Run", "Usage"],
    "orchestrator.core.retrying": ["RetryPolicy", "is_retryable"],
    "orchestrator.core.settings": ["Settings", "get_settings"],
    "orchestrator.providers": ["ProviderError", "ProviderUnreachable", "RunsProvider"],
    "orchestrator.providers.base": ["TERMINAL", "RunStatus"],
    "orchestrator.store.admission": ["Submitted", "build_job", "submit"],
}  # fmt: skip
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME_OF])


__all__ = [
    "TERMINAL",
    "CancelJob",
    "ConfigurationError",
    "ErrorDetail",
    "InvalidInput",
    "Kind",
    "Lifecycle",
    "Outcome",
    "PollPolicy",
    "Progress",
    "ProviderError",
    "ProviderUnreachable",
    "RedisUnavailable",
    "Result",
    "RetryPolicy",
    "Run",
    "RunStatus",
    "RunctlError",
    "RunsProvider",
    "Settings",
    "Submitted",
    "Usage",
    "build_job",
    "get_settings",
    "is_retryable",
    "submit",
]

"""run-orchestrator: stop runs of Assistants-protocol agent platforms reliably.

The library never imports Celery; the Celery edge is the `workers` package, whose
`workers.producer.Producer` is the Python API for queueing cancels.
"""

from orchestrator.core.errors import ConfigurationError, InvalidInput, RedisUnavailable, RunctlError
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

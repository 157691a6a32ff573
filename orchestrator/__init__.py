"""run-orchestrator: stop runs of Assistants-protocol agent platforms reliably.

The library never imports Celery; the Celery edge is the `workers` package, whose
`workers.producer.Producer` is the Python API for queueing cancels.
"""

from orchestrator.errors import ConfigurationError, InvalidInput, RedisUnavailable, RunctlError
from orchestrator.jobs import Submitted, build_job, submit
from orchestrator.lifecycle import Lifecycle, PollPolicy, Progress
from orchestrator.models import (
    TERMINAL,
    CancelJob,
    ErrorDetail,
    Outcome,
    Provider,
    Result,
    Run,
    RunStatus,
    Usage,
)
from orchestrator.providers import ProviderError, ProviderUnreachable, RunsProvider
from orchestrator.retrying import RetryPolicy, is_retryable
from orchestrator.settings import Settings, get_settings

__all__ = [
    "TERMINAL",
    "CancelJob",
    "ConfigurationError",
    "ErrorDetail",
    "InvalidInput",
    "Lifecycle",
    "Outcome",
    "PollPolicy",
    "Progress",
    "Provider",
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

"""Building the enforcer for a process: its policies, its rate-limited lookups, its queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import CancelJob, Provider
from orchestrator.core.policies import load_policies
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.providers import make_provider
from orchestrator.service.discovery import thread_runs
from orchestrator.service.enforcer import Enforcer, EnforcerConfig
from orchestrator.store.admission import Submitted
from orchestrator.store.ratelimit import RateLimiter, limited_call, rate_limiter

T = TypeVar("T")
LOOKUP_BUDGET_S = 30.0


def make_enforcer(
    settings: Settings,
    client: redis.Redis,
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
    *,
    policies_file: str | None = None,
) -> Enforcer:
    """The enforcer, with the policies read from `policies_file` (else the setting)."""
    path = Path(policies_file or settings.policies_file)
    if not path.is_file():
        raise ConfigurationError(f"no policy file at {path} (RUNCTL_POLICIES_FILE or --policies)")
    policies = load_policies(path.read_text(encoding="utf-8"))
    runs = make_provider(Provider.ASSISTANTS, settings, max_connections=32)
    limiter = rate_limiter(client, settings, Provider.ASSISTANTS)
    return Enforcer(
        client=client,
        policies=policies,
        fetch=lambda t, r: _limited(limiter, lambda: runs.retrieve(t, r).run),
        list_runs=lambda t: list(thread_runs(runs, t, call=partial(_limited, limiter))),
        submit_many=submit_many,
        clock=time.time,
        dialect=runs.dialect,
        config=EnforcerConfig(
            batch_limit=settings.enforce_batch_limit,
            recheck_max_s=settings.enforce_recheck_max_s,
            reissue_max=settings.enforce_reissue_max,
            reissue_backoff_s=settings.enforce_reissue_backoff_s,
            deadline_s=settings.default_deadline_s,
        ),
    )


def _limited(limiter: RateLimiter, fn: Callable[[], T]) -> T:
    return limited_call(
        limiter,
        fn,
        budget_s=LOOKUP_BUDGET_S,
        policy=RetryPolicy(),
        clock=time.time,
        sleep=time.sleep,
    )

"""Building the enforcer for a process: its policies, its rate-limited lookups, its queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from orchestrator.enforcer import Enforcer, EnforcerConfig
from orchestrator.errors import ConfigurationError
from orchestrator.jobs import Submitted
from orchestrator.models import CancelJob, Provider, Run
from orchestrator.policies import load_policies
from orchestrator.providers import RunsProvider, make_provider
from orchestrator.ratelimit import RateLimiter, limited_call
from orchestrator.retrying import RetryPolicy
from orchestrator.settings import Settings
from workers.context import rate_limiter

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
        list_runs=lambda t: _all_runs(runs, t, limiter),
        submit_many=submit_many,
        clock=time.time,
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


def _all_runs(runs: RunsProvider, thread_id: str, limiter: RateLimiter) -> list[Run]:
    found: list[Run] = []
    after: str | None = None
    while True:
        page = _limited(limiter, partial(runs.list_runs, thread_id, after=after))
        found += page.runs
        if not page.has_more or page.last_id is None:
            return found
        after = page.last_id

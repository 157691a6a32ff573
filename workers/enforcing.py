"""Building the enforcer for a process: its policies, its rate-limited lookups, its queue."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import CancelJob, Run
from orchestrator.core.policies import load_policies
from orchestrator.core.provider import ProviderError, RunsProvider
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.providers import make_provider
from orchestrator.providers.base import BuildOptions
from orchestrator.service.connections import Connections, load_connections
from orchestrator.service.discovery import thread_runs
from orchestrator.service.enforcer import Enforcer, EnforcerConfig
from orchestrator.store.admission import Submitted
from orchestrator.store.ratelimit import RateLimiter, limited_call, rate_limiter

T = TypeVar("T")
LOOKUP_BUDGET_S = 30.0


class _Clients:
    """One client and one rate limiter per connection, built when first needed (a pass
    that looks at no run of a connection needs no key for it)."""

    def __init__(self, settings: Settings, client: redis.Redis, connections: Connections) -> None:
        self._settings = settings
        self._redis = client
        self._connections = connections
        self._built: dict[str, tuple[RunsProvider, RateLimiter]] = {}

    def get(self, name: str) -> tuple[RunsProvider, RateLimiter]:
        if name not in self._built:
            connection = self._connections.by_name[name]  # KeyError: not configured
            options = BuildOptions(32, self._settings.read_timeout_s,
                                   self._settings.connect_timeout_s)  # fmt: skip
            self._built[name] = (
                make_provider(connection, options),
                rate_limiter(self._redis, self._settings, connection),
            )
        return self._built[name]


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
    connections = load_connections(settings)
    clients = _Clients(settings, client, connections)

    def fetch(provider: str, thread_id: str | None, run_id: str) -> Run:
        runs, limiter = clients.get(provider)
        return _limited(limiter, lambda: _run_of(runs.retrieve(thread_id, run_id).run))

    def list_runs(provider: str, thread_id: str) -> list[Run]:
        runs, limiter = clients.get(provider)
        return list(thread_runs(runs, thread_id, call=partial(_limited, limiter)))

    return Enforcer(
        client=client,
        policies=policies,
        fetch=fetch,
        list_runs=list_runs,
        submit_many=submit_many,
        clock=time.time,
        dialect_of=lambda name: clients.get(name)[0].dialect,
        config=EnforcerConfig(
            batch_limit=settings.enforce_batch_limit,
            recheck_max_s=settings.enforce_recheck_max_s,
            reissue_max=settings.enforce_reissue_max,
            reissue_backoff_s=settings.enforce_reissue_backoff_s,
            deadline_s=settings.default_deadline_s,
        ),
    )


def _run_of(run: Run | None) -> Run:
    if run is None:
        raise ProviderError("a look at the run answered with no body", should_retry=True)
    return run


def _limited(limiter: RateLimiter, fn: Callable[[], T]) -> T:
    return limited_call(
        limiter,
        fn,
        budget_s=LOOKUP_BUDGET_S,
        policy=RetryPolicy(),
        clock=time.time,
        sleep=time.sleep,
    )

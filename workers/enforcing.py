"""Building the enforcer for a process: its policies, its rate-limited lookups, its queue.

A worker builds one provider client and limiter per connection it needs, once
(`Enforcing`), and reuses them on every pass; the policy file is read once and again only
when it changes (`PolicySource`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from orchestrator.core.connections import Connection
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import CancelJob, Run
from orchestrator.core.policies import PolicyError, PolicySet, load_policies
from orchestrator.core.provider import ProviderError, RunsProvider
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.providers import make_provider
from orchestrator.providers.base import BuildOptions
from orchestrator.service.connections import Connections, load_connections
from orchestrator.service.discovery import thread_runs
from orchestrator.service.enforcer import Enforcer, EnforcerConfig, PassReport
from orchestrator.store.admission import Submitted
from orchestrator.store.ratelimit import RateLimiter, limited_call, rate_limiter

T = TypeVar("T")
LOOKUP_BUDGET_S = 30.0
log = logging.getLogger(__name__)


class _Clients:
    """One client and one rate limiter per connection, built when first needed (a pass
    that looks at no run of a connection needs no key for it)."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        connections: Connections,
        *,
        make_runs: Callable[[Connection], RunsProvider] | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._connections = connections
        self._telemetry = telemetry
        options = BuildOptions(
            32, settings.read_timeout_s, settings.connect_timeout_s, telemetry=telemetry
        )
        self._make_runs = make_runs or partial(make_provider, options=options)
        self._built: dict[str, tuple[RunsProvider, RateLimiter]] = {}

    def get(self, name: str) -> tuple[RunsProvider, RateLimiter]:
        """The connection's client and limiter, the same on every call (KeyError: a name
        that is not configured)."""
        if name not in self._built:
            connection = self._connections.by_name[name]
            self._built[name] = (
                self._make_runs(connection),
                rate_limiter(self._redis, self._settings, connection, telemetry=self._telemetry),
            )
        return self._built[name]


def make_enforcer(
    settings: Settings,
    client: redis.Redis,
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
    *,
    policies_file: str | None = None,
) -> Enforcer:
    """The enforcer, with the policies read from `policies_file` (else the setting); for
    one pass by hand (`runctl enforce`): a missing file is an error."""
    path = Path(policies_file or settings.policies_file)
    if not path.is_file():
        raise ConfigurationError(f"no policy file at {path} (RUNCTL_POLICIES_FILE or --policies)")
    policies = load_policies(path.read_text(encoding="utf-8"))
    clients = _Clients(settings, client, load_connections(settings))
    return _enforcer(settings, client, submit_many, clients, policies)


class PolicySource:
    """A policy file, read once and again whenever its modification time or size changes.

    A missing or invalid file is logged once (until it changes), not on every pass; an
    invalid file keeps the policies last read, a missing one stops enforcement (None).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) last read, or -1s
        self._policies: PolicySet | None = None

    def current(self) -> PolicySet | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._seen != (-1, -1):
                log.warning("no policy file at %s: enforcement passes do nothing until it "
                            "appears (RUNCTL_POLICIES_FILE)", self.path)  # fmt: skip
                self._seen = (-1, -1)
                self._policies = None
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._seen:
            return self._policies
        self._seen = stamp
        try:
            self._policies = load_policies(self.path.read_text(encoding="utf-8"))
            log.info("policy file read", extra={"path": str(self.path)})
        except (PolicyError, OSError, UnicodeDecodeError) as exc:
            kept = "keeping the policies last read" if self._policies else "no policies yet"
            log.error("policy file %s refused (%s); %s", self.path, exc, kept)
        return self._policies


class Enforcing:
    """A worker's enforcement: per connection one provider client and limiter, and one
    producer, for every pass."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
        *,
        make_runs: Callable[[Connection], RunsProvider] | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        connections = load_connections(settings)
        self.clients = _Clients(
            settings, client, connections, make_runs=make_runs, telemetry=telemetry
        )
        self._build = partial(
            _enforcer, settings, client, submit_many, self.clients, telemetry=telemetry
        )
        self.source = PolicySource(Path(settings.policies_file))
        self._enforcer: Enforcer | None = None

    def enforcer(self) -> Enforcer | None:
        """The enforcer with the current policies, or None while there is no policy file."""
        policies = self.source.current()
        if policies is None:
            return None
        if self._enforcer is None:
            self._enforcer = self._build(policies)
        elif policies is not self._enforcer.policies:
            self._enforcer = dataclasses.replace(self._enforcer, policies=policies)
        return self._enforcer

    def run_once(self) -> PassReport:
        enforcer = self.enforcer()
        return PassReport(acted=False) if enforcer is None else enforcer.run_once()


def _enforcer(
    settings: Settings,
    client: redis.Redis,
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
    clients: _Clients,
    policies: PolicySet,
    telemetry: Telemetry = NO_TELEMETRY,
) -> Enforcer:
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
        telemetry=telemetry,
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

"""Building the enforcer for a process: its policies, its rate-limited lookups, its queue.

A worker builds its provider client and limiter once (`Enforcing`) and reuses them on
every pass; the policy file is read once and again only when it changes (`PolicySource`).
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

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import CancelJob, Provider
from orchestrator.core.policies import PolicyError, PolicySet, load_policies
from orchestrator.core.provider import RunsProvider
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.providers import make_provider
from orchestrator.service.discovery import thread_runs
from orchestrator.service.enforcer import Enforcer, EnforcerConfig, PassReport
from orchestrator.store.admission import Submitted
from orchestrator.store.ratelimit import RateLimiter, limited_call, rate_limiter

T = TypeVar("T")
LOOKUP_BUDGET_S = 30.0
log = logging.getLogger(__name__)


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
    runs = make_provider(Provider.ASSISTANTS, settings, max_connections=32)
    return _enforcer(settings, client, submit_many, runs, policies)


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
    """A worker's enforcement: one provider client, limiter and producer for every pass."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
        *,
        make_runs: Callable[[], RunsProvider] | None = None,
    ) -> None:
        default = partial(make_provider, Provider.ASSISTANTS, settings, max_connections=32)
        self._build = partial(_enforcer, settings, client, submit_many, (make_runs or default)())
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
    runs: RunsProvider,
    policies: PolicySet,
) -> Enforcer:
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

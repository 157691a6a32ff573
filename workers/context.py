"""What one worker process holds for all its jobs: one Redis pool, one provider client each.

Built once per process, on first use; the Celery task stays a thin edge over it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from typing import TYPE_CHECKING

import redis
from prometheus_client import CollectorRegistry

from orchestrator.core.connections import Connection
from orchestrator.core.lifecycle import Lifecycle, PollPolicy, PollSchedule
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.core.settling import LearnedSchedule, LookPlan
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.metrics import PrometheusTelemetry, serve
from orchestrator.providers import make_provider
from orchestrator.providers.base import BuildOptions
from orchestrator.service.connections import load_connections
from orchestrator.store.client import check_redis, redis_client
from orchestrator.store.deadletters import DeadLetters
from orchestrator.store.leases import Leases, WorkerCard, renew_every_s
from orchestrator.store.outcomes import OutcomeStore
from orchestrator.store.ratelimit import rate_limiter
from orchestrator.store.settling import SettleTimes, connection_id
from workers.handover import HandOver
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from workers.enforcing import Enforcing
    from workers.producer import Producer


class WorkerContext:
    """Built once per worker process, eagerly, so a misconfiguration fails at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.heartbeat: Heartbeat | None = None
        self.hand_over = HandOver(grace_s=settings.shutdown_grace_s)
        self.settle_times: list[SettleTimes] = []  # flushed when the worker stops
        self.redis = redis_client(settings)
        check_redis(settings)
        self.store = OutcomeStore(
            self.redis,
            stream_maxlen=settings.outcome_stream_maxlen,
            keep_s=settings.outcome_keep_s,
            progress_keep_s=settings.inflight_ttl_s,
        )
        retry_policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            server_delay_max_s=settings.server_delay_max_s,
        )
        poll_policy = PollPolicy(first_s=settings.poll_first_s, max_s=settings.poll_max_s)
        options = BuildOptions(
            max_connections=settings.worker_concurrency,
            read_timeout_s=settings.read_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )
        self.connections = load_connections(settings)
        # Recorded only where they are served (RUNCTL_METRICS_PORT); `serve_metrics` serves.
        self.metrics: PrometheusTelemetry | None = None
        self.telemetry: Telemetry = NO_TELEMETRY
        if settings.metrics_port:
            self.metrics = PrometheusTelemetry(
                CollectorRegistry(), providers=self.connections.by_name
            )
            self.telemetry = self.metrics
        options = dataclasses.replace(options, telemetry=self.telemetry)
        # One client per configured connection, built now: a key that is not set stops the
        # worker at start-up, naming the variable.
        self.lifecycles: dict[str, Lifecycle] = {
            name: Lifecycle(
                provider=make_provider(connection, options),
                retry_policy=retry_policy,
                poll_policy=poll_policy,
                clock=time.time,
                sleep=time.sleep,  # gevent patches it: a sleeping job yields its greenlet
                gate=rate_limiter(self.redis, settings, connection, telemetry=self.telemetry),
                kind=connection.kind.value,
                schedule=self._schedule(connection),
            )
            for name, connection in self.connections.by_name.items()
        }

    def serve_metrics(self) -> int | None:
        """Serve this process's /metrics (RUNCTL_METRICS_PORT, or the next free port after
        it); the port taken, or None when metrics are off or no port was free."""
        if self.metrics is None:
            return None
        self.metrics.count_running(self.hand_over.running)
        settings = self.settings
        return serve(self.metrics.registry, host=settings.metrics_host,
                     port=settings.metrics_port, tries=settings.metrics_ports)  # fmt: skip

    def hold_lease(self, worker_id: str, card: WorkerCard | None = None) -> None:
        """Take this process's lease now (before any message is taken) and renew it from
        an OS thread until `end_lease`, listing the process's `card` with it."""
        lease_s = self.settings.worker_lease_s
        every_s = renew_every_s(lease_s)
        try:
            Leases(self.redis, lease_s=lease_s).renew(worker_id, card)
        except redis.RedisError as exc:  # not up yet: the heartbeat keeps trying
            log.warning("could not take the worker's lease yet (%s)", type(exc).__name__)

        def own_client() -> Leases:
            client = redis_client(
                self.settings, max_connections=1, retries=0, socket_timeout_s=every_s
            )
            return Leases(client, lease_s=lease_s)

        self.heartbeat = Heartbeat(own_client, worker_id, every_s=every_s, card=card)
        self.heartbeat.start()

    def end_lease(self) -> None:
        """Stop renewing and end the lease: what is still held goes back at the next sweep."""
        if self.heartbeat is None:
            return
        self.heartbeat.stop()
        Leases(self.redis, lease_s=self.settings.worker_lease_s).release(self.heartbeat.worker_id)
        self.heartbeat = None

    @functools.cached_property
    def enforcing(self) -> Enforcing:
        """The process's enforcement, built on its first pass and reused by every pass:
        one provider client, one producer, the policy file read again only when changed."""
        from workers.enforcing import Enforcing

        return Enforcing(
            self.settings, self.redis, self.producer.cancel_many, telemetry=self.telemetry
        )

    @property
    def dead_letters(self) -> DeadLetters:
        """Where this process parks the messages it refuses (counted in its metrics)."""
        return DeadLetters(self.redis, telemetry=self.telemetry)

    def _schedule(self, connection: Connection) -> PollSchedule | None:
        """The learned poll schedule of this connection (its name and base URL), if enabled."""
        settings = self.settings
        if not settings.poll_learned:
            return None
        times = SettleTimes(
            self.redis,
            connection_id(connection.name, connection.base_url),
            half_life_s=settings.settle_half_life_s,
        )
        self.settle_times.append(times)
        plan = LookPlan(
            first_quantile=settings.poll_first_quantile,
            next_quantile=settings.poll_next_quantile,
            min_gap_s=settings.poll_min_gap_s,
        )
        return LearnedSchedule(
            times.snapshot, times.record, seed_s=settings.poll_first_s, plan=plan
        )

    @functools.cached_property
    def producer(self) -> Producer:
        """The process's producer (for the enforcer's cancels), built on first use and
        sharing the context's Redis pool."""
        from workers.producer import Producer

        return Producer(self.settings, client=self.redis)


_lock = threading.Lock()
_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    """The process's context; the first call builds it (at worker start-up, see app.py)."""
    global _context  # noqa: PLW0603 - one context per process
    with _lock:
        if _context is None:
            from orchestrator.core.settings import get_settings

            _context = WorkerContext(get_settings())
        return _context


def built_context() -> WorkerContext | None:
    """The process's context if it has been built, without building it."""
    with _lock:
        return _context

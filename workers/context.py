"""What one worker process holds for all its jobs: one Redis pool, one provider client each.

Built once per process, on first use; the Celery task stays a thin edge over it.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING

from orchestrator.core.lifecycle import Lifecycle, PollPolicy
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.providers import make_provider
from orchestrator.providers.base import BuildOptions
from orchestrator.service.connections import load_connections
from orchestrator.store.client import check_redis, redis_client
from orchestrator.store.outcomes import OutcomeStore
from orchestrator.store.ratelimit import rate_limiter

if TYPE_CHECKING:
    from workers.producer import Producer


class WorkerContext:
    """Built once per worker process, eagerly, so a misconfiguration fails at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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
        # One client per configured connection, built now: a key that is not set stops the
        # worker at start-up, naming the variable.
        self.lifecycles: dict[str, Lifecycle] = {
            name: Lifecycle(
                provider=make_provider(connection, options),
                retry_policy=retry_policy,
                poll_policy=poll_policy,
                clock=time.time,
                sleep=time.sleep,  # gevent patches it: a sleeping job yields its greenlet
                gate=rate_limiter(self.redis, settings, connection),
                kind=connection.kind.value,
            )
            for name, connection in self.connections.by_name.items()
        }

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

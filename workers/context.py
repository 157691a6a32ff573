"""What one worker process holds for all its jobs: one Redis pool, one provider client each.

Built once per process, on first use; the Celery task stays a thin edge over it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from orchestrator.lifecycle import Lifecycle, PollPolicy
from orchestrator.models import Provider
from orchestrator.outcomes import OutcomeStore
from orchestrator.providers import RunsProvider, make_provider
from orchestrator.retrying import RetryPolicy
from orchestrator.settings import Settings


def redis_client(settings: Settings, *, max_connections: int = 64) -> redis.Redis:
    """A pooled client that rides out a Redis restart by reconnecting with backoff."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=30),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return redis.Redis(connection_pool=pool)


@dataclass
class WorkerContext:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings)

    @cached_property
    def store(self) -> OutcomeStore:
        return OutcomeStore(
            self.redis,
            stream_maxlen=self.settings.outcome_stream_maxlen,
            keep_s=self.settings.outcome_keep_s,
            progress_keep_s=int(self.settings.visibility_timeout_s * 2),
        )

    @cached_property
    def providers(self) -> dict[Provider, RunsProvider]:
        return {}

    def lifecycle(self, provider: Provider) -> Lifecycle:
        client = self.providers.get(provider)
        if client is None:
            client = make_provider(
                provider, self.settings, max_connections=self.settings.worker_concurrency
            )
            self.providers[provider] = client
        s = self.settings
        return Lifecycle(
            provider=client,
            retry_policy=RetryPolicy(
                max_attempts=s.max_attempts,
                backoff_initial_s=s.backoff_initial_s,
                backoff_max_s=s.backoff_max_s,
                server_delay_max_s=s.server_delay_max_s,
            ),
            poll_policy=PollPolicy(first_s=s.poll_first_s, max_s=s.poll_max_s),
            clock=time.time,
            sleep=time.sleep,  # gevent patches it: a sleeping job yields its greenlet
        )


_lock = threading.Lock()
_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    global _context  # noqa: PLW0603 - one context per process, built on first use
    with _lock:
        if _context is None:
            from orchestrator.settings import get_settings

            _context = WorkerContext(get_settings())
        return _context

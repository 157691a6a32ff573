"""What one worker process holds for all its jobs: one Redis pool, one provider client each.

Built once per process, on first use; the Celery task stays a thin edge over it.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from orchestrator.errors import ConfigurationError
from orchestrator.lifecycle import Lifecycle, PollPolicy
from orchestrator.models import Provider
from orchestrator.outcomes import OutcomeStore
from orchestrator.providers import make_provider
from orchestrator.ratelimit import RateLimiter
from orchestrator.retrying import RetryPolicy
from orchestrator.settings import Settings


def redis_client(
    settings: Settings, *, max_connections: int = 64, retries: int = 30
) -> redis.Redis:
    """A pooled client that rides out a Redis restart by reconnecting with backoff."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return redis.Redis(connection_pool=pool)


log = logging.getLogger(__name__)

MIN_REDIS_VERSION = (6, 2)  # BLMOVE, for the atomic fetch (workers/transport.py)


def check_redis(settings: Settings) -> None:
    """At start-up: refuse a Redis too old for the fetch; warn about settings under which a
    promise of docs/reliability.md does not hold. A Redis not up yet is not checked."""
    client = redis_client(settings, max_connections=1, retries=0)
    try:
        info = client.info()
    except redis.RedisError as exc:
        log.warning("redis not reachable at start-up (%s); not checked", type(exc).__name__)
        return
    finally:
        client.close()
    version = str(info.get("redis_version", "0.0"))
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_REDIS_VERSION:
        raise ConfigurationError(f"Redis {version} is too old: workers need 6.2 or newer")
    policy = info.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        log.warning("redis maxmemory-policy is %s: evicted keys can lose jobs; use noeviction",
                    policy)  # fmt: skip
    if not info.get("aof_enabled"):
        log.warning("redis has no AOF persistence: a Redis restart loses queued jobs")


def rate_limiter(client: redis.Redis, settings: Settings, provider: Provider) -> RateLimiter:
    return RateLimiter(
        client,
        provider=provider.value,
        rate_limit_rps=settings.rate_limit_rps,
        burst_s=settings.rate_burst_s,
    )


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
        self.lifecycles: dict[Provider, Lifecycle] = {
            provider: Lifecycle(
                provider=make_provider(
                    provider, settings, max_connections=settings.worker_concurrency
                ),
                retry_policy=retry_policy,
                poll_policy=poll_policy,
                clock=time.time,
                sleep=time.sleep,  # gevent patches it: a sleeping job yields its greenlet
                gate=rate_limiter(self.redis, settings, provider),
            )
            for provider in Provider
        }


_lock = threading.Lock()
_context: WorkerContext | None = None


def get_context() -> WorkerContext:
    """The process's context; the first call builds it (at worker start-up, see app.py)."""
    global _context  # noqa: PLW0603 - one context per process
    with _lock:
        if _context is None:
            from orchestrator.settings import get_settings

            _context = WorkerContext(get_settings())
        return _context

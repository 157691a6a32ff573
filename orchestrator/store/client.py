"""Connecting to Redis: one pooled client that rides out restarts, and the start-up check."""

from __future__ import annotations

import logging

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.settings import Settings


def redis_client(
    settings: Settings,
    *,
    max_connections: int = 64,
    retries: int = 30,
    socket_timeout_s: float = 30.0,
) -> redis.Redis:
    """A pooled client that rides out a Redis restart by reconnecting with backoff."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout_s,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return redis.Redis(connection_pool=pool)


def async_redis_client(settings: Settings, *, max_connections: int = 1024) -> redis.asyncio.Redis:
    """An asyncio client for a server's event loop (e.g. SSE clients, each of which holds a
    connection while it waits on a stream); no retries: a client reconnects by itself."""
    return redis.asyncio.Redis.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


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

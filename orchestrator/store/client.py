"""Connecting to Redis: one pooled client that rides out restarts and failovers, and the
start-up check.

`RUNCTL_REDIS_URL` is `redis://`, `rediss://` (TLS) or, for a primary watched by Redis
Sentinel, `sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/DB]?master_name=NAME`:
the sentinels' addresses, the database, and the name the sentinels know the primary by.
The password is the data servers' (primary and replicas); `sentinel_password=` in the query
is the sentinels' own, if they ask for one. Every client follows the primary the sentinels
name, and reconnects to the new one after a failover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.settings import Settings


def redis_client(
    settings: Settings,
    *,
    max_connections: int = 64,
    retries: int = 30,
    socket_timeout_s: float = 30.0,
) -> redis.Redis:
    """A pooled client that rides out a Redis restart (or, over Sentinel, a failover) by
    reconnecting with backoff. Callers wait for a free connection (up to 30 s)."""
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": 30,
        "socket_connect_timeout": 5,
        "socket_timeout": socket_timeout_s,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    if is_sentinel_url(url):
        endpoint = SentinelUrl.parse(url)
        pool = BlockingSentinelPool(endpoint.master_name, endpoint.sentinel(), **options,
                                    **endpoint.server_credentials())  # fmt: skip
        return redis.Redis(connection_pool=pool)
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **options))


class PrimaryConnection(SentinelManagedConnection):
    """A connection that asks the sentinels for the primary each time it (re)connects.

    redis-py 8 reconnects a connection that broke while in use through
    `connect_check_health`, which retries the address the connection had, bypassing the
    Sentinel lookup in `connect`: after a failover, a command in flight when the primary
    died kept dialling the dead primary for its whole retry budget (53 s measured, 300
    greenlets), while fresh connections found the new one in 3 s."""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if retry_socket_connect and not self._sock:
            self.connect()  # type: ignore[no-untyped-call]  # Sentinel lookup, then connect_to
            return
        super().connect_check_health(check_health, retry_socket_connect)


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool (connections go to the primary the sentinels name; one to
    a demoted primary is dropped), waiting for a free connection like the plain client's
    instead of raising when all are in use."""

    def __init__(self, service_name: str, sentinel: Sentinel, **options: Any) -> None:
        options.setdefault("connection_class", PrimaryConnection)
        super().__init__(service_name, sentinel, **options)  # type: ignore[no-untyped-call]


def is_sentinel_url(url: str) -> bool:
    return url.startswith("sentinel://")


@dataclass(frozen=True)
class SentinelUrl:
    """A `sentinel://` URL, read: see this module's docstring for the form."""

    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """Read a `sentinel://` URL; ConfigurationError names what is wrong (never the
        password)."""
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        username, _, password = credentials.partition(":")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        master_name = query.pop("master_name", "")
        if not master_name:
            raise ConfigurationError(f"{URL_FIELD}: a sentinel:// URL needs ?master_name=NAME")
        sentinel_password = query.pop("sentinel_password", None)
        if query:
            raise ConfigurationError(f"{URL_FIELD}: a sentinel:// URL takes master_name and "
                                     f"sentinel_password only, not {sorted(query)}")  # fmt: skip
        path = parts.path.strip("/") or "0"
        if not path.isdigit():
            raise ConfigurationError(f"{URL_FIELD}: the database must be a number, not {path!r}")
        return cls(
            sentinels=tuple(_address(host) for host in hosts.split(",")),
            master_name=master_name,
            db=int(path),
            username=unquote(username) or None,
            password=unquote(password) or None,
            sentinel_password=sentinel_password,
        )

    def sentinel(self) -> Sentinel:
        """redis-py's view of the sentinels (short timeouts: a dead one is skipped)."""
        # One try per sentinel and lookup: a dead sentinel is skipped, not retried.
        timeouts = {"socket_timeout": 2, "socket_connect_timeout": 2,
                    "retry": Retry(NoBackoff(), retries=0)}  # fmt: skip
        auth = {"password": self.sentinel_password} if self.sentinel_password else {}
        return Sentinel(list(self.sentinels), sentinel_kwargs=timeouts | auth)  # type: ignore[no-untyped-call]

    def server_credentials(self) -> dict[str, Any]:
        """What a connection to the primary needs: the database and the password."""
        found: dict[str, Any] = {"db": self.db}
        if self.username:
            found["username"] = self.username
        if self.password:
            found["password"] = self.password
        return found

    def kombu_url(self) -> str:
        """kombu's form: one `sentinel://` URL per sentinel, joined by `;`; the first
        carries the credentials and the database (kombu reads them from it)."""
        auth = ""
        if self.username or self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        urls = [f"sentinel://{host}:{port}" for host, port in self.sentinels]
        urls[0] = f"sentinel://{auth}{self.sentinels[0][0]}:{self.sentinels[0][1]}/{self.db}"
        return ";".join(urls)

    def kombu_options(self) -> dict[str, Any]:
        """The transport options kombu's sentinel channel reads."""
        options: dict[str, Any] = {"master_name": self.master_name}
        if self.sentinel_password:
            options["sentinel_kwargs"] = {"password": self.sentinel_password}
        return options


URL_FIELD = "RUNCTL_REDIS_URL"
SENTINEL_PORT = 26379


def _address(host: str) -> tuple[str, int]:
    name, colon, port = host.strip().rpartition(":")
    if not colon:
        name, port = host.strip(), str(SENTINEL_PORT)
    if not name or not port.isdigit():
        raise ConfigurationError(f"{URL_FIELD}: a sentinel must be HOST:PORT, not {host!r}")
    return name, int(port)


def async_redis_client(settings: Settings, *, max_connections: int = 1024) -> redis.asyncio.Redis:
    """An asyncio client for a server's event loop (e.g. SSE clients, each of which holds a
    connection while it waits on a stream); no retries: a client reconnects by itself (over
    Sentinel, to the primary the sentinels name then)."""
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    if is_sentinel_url(url):
        endpoint = SentinelUrl.parse(url)
        sentinel_auth = (
            {"password": endpoint.sentinel_password} if endpoint.sentinel_password else {}
        )
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(endpoint.sentinels), sentinel_kwargs={"socket_timeout": 2} | sentinel_auth
        )
        primary: redis.asyncio.Redis = sentinel.master_for(
            endpoint.master_name, **options, **endpoint.server_credentials()
        )
        return primary
    return redis.asyncio.Redis.from_url(url, **options)


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

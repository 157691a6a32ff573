"""The parts a benchmark starts on this machine: Redis, the simulator, worker processes.

Each part is a process of its own (the simulator too, so that it never competes with the
benchmark for one GIL). Each is registered for stopping on the caller's ExitStack the moment
it exists, and is waited for by polling with a deadline, never by a fixed sleep.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from pydantic import SecretStr

from orchestrator.core.settings import Settings
from orchestrator.devkit.embedded_redis import free_port, is_reachable, start_embedded
from orchestrator.devkit.simulator import SimulatorConfig

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 3000


class StartFailed(RuntimeError):
    """A part did not start or died: the message names it and ends with its log's tail."""


def wait_until(probe: Callable[[], bool], *, what: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `probe` until it returns True; raise StartFailed at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise StartFailed(f"{what} was not ready after {timeout_s:g} s")
        time.sleep(0.05)


@dataclass
class Child:
    """A child process with its log file; `stop()` ends it (TERM, then KILL)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise StartFailed(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    stack: ExitStack, name: str, argv: list[str], *, env: dict[str, str], log_path: Path
) -> Child:
    """Start `argv` with its output in `log_path`, and stop it when `stack` closes."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    child = Child(name, process, log_path)
    stack.callback(child.stop)
    return child


# --- Redis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    url: str
    embedded: bool
    pid: int | None  # the embedded server's, for measuring it; None for an external one


def open_redis(stack: ExitStack, *, url: str | None, directory: Path) -> RedisTarget:
    """The Redis at `url` if it answers, else a private embedded one (flushed, never shared).

    An external Redis is never flushed: the benchmark's queue name is unique and it reads
    the outcome stream only after the point where it started.
    """
    if url is not None and is_reachable(url):
        return RedisTarget(url=url, embedded=False, pid=None)
    embedded = start_embedded(directory=directory)
    stack.callback(embedded.stop)
    client = redis.Redis.from_url(embedded.url)
    try:
        client.flushdb()
    finally:
        client.close()
    pid = embedded.process.pid if embedded.process is not None else None
    return RedisTarget(url=embedded.url, embedded=True, pid=pid)


# --- the simulator ---------------------------------------------------------------------------


@dataclass
class SimulatorProcess:
    """`python -m orchestrator.devkit.simulator` in its own process, and its admin API."""

    child: Child
    port: int
    api_key: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/_sim"

    def healthy(self) -> bool:
        self.child.check_alive()
        try:
            return httpx.get(f"{self.admin_url}/health", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    def seed(self, count: int, *, status: str) -> list[tuple[str, str]]:
        """Create `count` runs in `status`, one thread each; their (thread_id, run_id)."""
        reply = httpx.post(
            f"{self.admin_url}/runs", json={"count": count, "status": status}, timeout=120
        )
        runs: list[dict[str, str]] = reply.raise_for_status().json()["runs"]
        return [(run["thread_id"], run["run_id"]) for run in runs]

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.admin_url}/stats", timeout=60)
        stats: dict[str, Any] = reply.raise_for_status().json()
        return stats

    def reset(self) -> None:
        """Forget every run, counter and logged request; the config (and its key) stays."""
        httpx.post(f"{self.admin_url}/reset", json={}, timeout=60).raise_for_status()


def start_simulator(
    stack: ExitStack, config: SimulatorConfig, *, log_dir: Path
) -> SimulatorProcess:
    """Start the simulator on a free loopback port and return once `/_sim/health` answers."""
    port = free_port()
    argv = [
        sys.executable, "-m", "orchestrator.devkit.simulator",
        "--host", "127.0.0.1", "--port", str(port), "--config", config.model_dump_json(),
    ]  # fmt: skip
    child = spawn(stack, "simulator", argv, env=dict(os.environ), log_path=log_dir / "sim.log")
    simulator = SimulatorProcess(child, port, config.api_key)
    wait_until(simulator.healthy, what=f"the simulator on port {port}")
    return simulator


def new_api_key() -> str:
    return f"sim-bench-{secrets.token_hex(12)}"


# --- workers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """What the workers and the producer share: a Redis, a queue, the simulator."""

    redis_url: str
    queue: str
    base_url: str
    api_key: str
    concurrency: int
    log_level: str = "WARNING"
    rate_limit_rps: float = 0.0  # our global limit; 0 = off (the provider is not limited)

    def worker_env(self) -> dict[str, str]:
        """The parent's environment without any RUNCTL_/OPENAI_ setting, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
        env.update(
            RUNCTL_REDIS_URL=self.redis_url,
            RUNCTL_QUEUE_NAME=self.queue,
            OPENAI_BASE_URL=self.base_url,
            RUNCTL_LOG_LEVEL=self.log_level,
            RUNCTL_RATE_LIMIT_RPS=str(self.rate_limit_rps),
            PYTHONUNBUFFERED="1",
        )
        env["OPENAI_API_KEY"] = self.api_key  # the workers' own; never queued
        return env

    def producer_settings(self) -> Settings:
        """The producer's view: the same Redis and queue, and no API key."""
        return Settings(redis_url=SecretStr(self.redis_url), queue_name=self.queue)


def start_workers(
    stack: ExitStack, deployment: Deployment, *, count: int, log_dir: Path
) -> list[Child]:
    """Start `count` worker processes, then return once each answers a Celery control ping."""
    env = deployment.worker_env()
    workers: list[Child] = []
    for number in range(1, count + 1):
        name = f"b{number}@bench"
        argv = [
            sys.executable, "-m", "orchestrator", "worker", "--name", name,
            "--concurrency", str(deployment.concurrency), "--loglevel", deployment.log_level,
        ]  # fmt: skip
        workers.append(spawn(stack, name, argv, env=env, log_path=log_dir / f"{name}.log"))
    from workers.app import make_app  # imports Celery: only once workers are wanted

    app = make_app(deployment.producer_settings())
    try:
        for worker in workers:

            def answered(worker: Child = worker) -> bool:
                worker.check_alive()
                return bool(app.control.ping(destination=[worker.name], timeout=0.5))

            wait_until(answered, what=f"worker {worker.name}")
    finally:
        app.close()
    return workers


def open_stage(
    stack: ExitStack,
    *,
    prefix: str,
    redis_url: str | None,
    keep_logs: bool,
    config: SimulatorConfig,
) -> tuple[Path, RedisTarget, SimulatorProcess]:
    """A working folder (removed at the end unless `keep_logs`), a Redis and a simulator."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep_logs:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    target = open_redis(stack, url=redis_url, directory=workdir / "redis")
    return workdir, target, start_simulator(stack, config, log_dir=workdir)

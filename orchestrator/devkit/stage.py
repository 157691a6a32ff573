"""The stage: a Redis, the simulator and `runctl worker` processes on this machine, for the
demo, the benchmarks and the integration tests.

Every part is stopped when the caller's `ExitStack` closes (workers: when a stack is given;
a test that kills and restarts workers stops them itself; a part that fails to start is
stopped at once), with SIGTERM, then SIGKILL after `STOP_GRACE_S`. Each is waited for by
polling with a deadline, never by a fixed sleep; a child that dies while it is waited for
raises `StartFailed` with the tail of its log.

A worker's environment is built from scratch (`base_env()` plus what `WorkerEnv` says), so
no `RUNCTL_*` or `OPENAI_*` setting of the caller's shell reaches it.

Readiness of a worker is a probe the caller passes in (`ready(name) -> bool`, e.g.
`workers.producer.Producer.worker_answers`, a Celery control ping): this module sits below
the Celery edge and must not import it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from orchestrator.core.settings import Settings
from orchestrator.devkit.embedded_redis import free_port, is_reachable, start_embedded
from orchestrator.devkit.simulator import SimulatorConfig

READY_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
STOP_GRACE_S = 20.0
LOG_TAIL_CHARS = 3000
ADMIN_TIMEOUT_S = 120.0  # seeding thousands of runs takes a while on a busy machine

INHERITED_NAMES = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT",
)  # fmt: skip
"""What a child takes from this process's environment: where things are, nothing else."""

ReadyProbe = Callable[[str], bool]
"""Whether the worker named so is ready; called repeatedly until True or the deadline."""


class StartFailed(RuntimeError):
    """A part did not start or died: the message names it and ends with its log's tail."""


def wait_until(
    probe: Callable[[], bool],
    *,
    what: str,
    timeout_s: float = READY_TIMEOUT_S,
    interval_s: float = POLL_INTERVAL_S,
) -> None:
    """Poll `probe` until it returns True; raise StartFailed at the deadline. A probe may
    raise StartFailed itself (a child died): that ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise StartFailed(f"{what} was not ready after {timeout_s:g} s")
        time.sleep(interval_s)


def base_env() -> dict[str, str]:
    """A child's environment before any setting: `INHERITED_NAMES` and unbuffered output."""
    env = {name: os.environ[name] for name in INHERITED_NAMES if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- child processes -------------------------------------------------------------------------


@dataclass
class Child:
    """A child process with its log file; `stop()` ends it (TERM, then KILL)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log()[-LOG_TAIL_CHARS:]

    def check_alive(self) -> None:
        """Raise StartFailed, with the log's tail, if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise StartFailed(f"{self.name} exited with code {code}:\n{self.log_tail()}")

    def stop(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, and SIGKILL if it has not exited after `grace_s`. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()

    def kill(self) -> None:
        """SIGKILL at once: no goodbye, no cleanup in the child."""
        self.process.kill()
        self.process.wait()


def spawn(name: str, argv: list[str], *, env: Mapping[str, str], log_path: Path) -> Child:
    """Start `argv` with `env` only and its output in `log_path`. The caller stops it."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Child(name, process, log_path)


# --- Redis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    url: str
    embedded: bool
    pid: int | None  # the embedded server's, for measuring it; None for an external one


def open_redis(stack: ExitStack, *, url: str | None, directory: Path) -> RedisTarget:
    """The Redis at `url` if it answers, else a private embedded one (empty, never shared),
    stopped when `stack` closes. An external Redis is not flushed here."""
    if url is not None and is_reachable(url):
        return RedisTarget(url=url, embedded=False, pid=None)
    embedded = start_embedded(directory=directory)
    stack.callback(embedded.stop)
    pid = embedded.process.pid if embedded.process is not None else None
    return RedisTarget(url=embedded.url, embedded=True, pid=pid)


# --- the simulator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatorAdmin:
    """A running simulator's API (`base_url`, for clients) and its admin API (`/_sim`)."""

    base_url: str  # ends in /v1
    api_key: str = field(repr=False)

    @property
    def admin_url(self) -> str:
        return self.base_url.removesuffix("/v1") + "/_sim"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.admin_url}/health", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    def seed(self, count: int = 1, **spec: Any) -> list[tuple[str, str]]:
        """Create `count` runs as `spec` says (status, behavior, ...); their (thread, run)."""
        reply = httpx.post(
            f"{self.admin_url}/runs", json={"count": count, **spec}, timeout=ADMIN_TIMEOUT_S
        )
        runs: list[dict[str, str]] = reply.raise_for_status().json()["runs"]
        return [(run["thread_id"], run["run_id"]) for run in runs]

    def seed_one(self, **spec: Any) -> tuple[str, str]:
        return self.seed(1, **spec)[0]

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        """The requests it logged, filtered as the admin API allows."""
        reply = httpx.get(f"{self.admin_url}/requests", params=filters, timeout=ADMIN_TIMEOUT_S)
        entries: list[dict[str, Any]] = reply.raise_for_status().json()["requests"]
        return entries

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.admin_url}/stats", timeout=ADMIN_TIMEOUT_S)
        stats: dict[str, Any] = reply.raise_for_status().json()
        return stats

    def configure(self, **knobs: Any) -> None:
        reply = httpx.patch(f"{self.admin_url}/config", json=knobs, timeout=ADMIN_TIMEOUT_S)
        reply.raise_for_status()

    def settle_now(self) -> int:
        """Every run still settling after a cancel settles now; returns how many."""
        reply = httpx.post(f"{self.admin_url}/settle", json={}, timeout=ADMIN_TIMEOUT_S)
        settled: int = reply.raise_for_status().json()["settled"]
        return settled

    def reset(self) -> None:
        """Forget every run, counter and logged request; the config (and its key) stays."""
        reply = httpx.post(f"{self.admin_url}/reset", json={}, timeout=ADMIN_TIMEOUT_S)
        reply.raise_for_status()


@dataclass(frozen=True)
class SimulatorProcess(SimulatorAdmin):
    """`python -m orchestrator.devkit.simulator` in a process of its own (its own GIL)."""

    child: Child = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        return self.child.pid

    def check_alive(self) -> None:
        self.child.check_alive()


def start_simulator(
    stack: ExitStack,
    config: SimulatorConfig,
    *,
    log_dir: Path,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> SimulatorProcess:
    """Start the simulator on a free loopback port, stopped when `stack` closes; return once
    `/_sim/health` answers. Its log is `log_dir/sim.log`."""
    port = free_port()
    argv = [
        sys.executable, "-m", "orchestrator.devkit.simulator",
        "--host", "127.0.0.1", "--port", str(port), "--config", config.model_dump_json(),
    ]  # fmt: skip
    child = spawn("simulator", argv, env=base_env(), log_path=log_dir / "sim.log")
    stack.callback(child.stop)
    sim = SimulatorProcess(f"http://127.0.0.1:{port}/v1", config.api_key, child)

    def healthy() -> bool:
        child.check_alive()
        return sim.healthy()

    wait_until(healthy, what=f"the simulator on port {port}", timeout_s=ready_timeout_s)
    return sim


def new_api_key(prefix: str = "sim") -> str:
    """A fresh key for a simulator: a stage never reuses the shell's OPENAI_API_KEY."""
    return f"{prefix}-{secrets.token_hex(16)}"


# --- workers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerEnv:
    """What workers and producers share: a Redis, a queue, the provider, further settings.

    `settings` are more `RUNCTL_*` / `OPENAI_*` values (e.g. `RUNCTL_RATE_LIMIT_RPS`); they
    win over the four named fields.
    """

    redis_url: str
    queue: str
    base_url: str
    api_key: str = field(repr=False)
    settings: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """A worker's whole environment: `base_env()` and these values, nothing else."""
        env = base_env()
        env.update(
            RUNCTL_REDIS_URL=self.redis_url,
            RUNCTL_QUEUE_NAME=self.queue,
            OPENAI_BASE_URL=self.base_url,
        )
        env["OPENAI_API_KEY"] = self.api_key  # the workers' own; never queued
        env.update(self.settings)
        return env

    def producer_settings(self) -> Settings:
        """The producer's view: every `RUNCTL_*` value the workers get, and no API key."""
        fields: dict[str, Any] = {
            name.removeprefix("RUNCTL_").lower(): value
            for name, value in self.env().items()
            if name.startswith("RUNCTL_")
        }
        fields["redis_url"] = SecretStr(fields["redis_url"])
        return Settings.model_validate(fields)


def worker_argv(name: str, *, concurrency: int | None, log_level: str | None) -> list[str]:
    """`runctl worker` as a child runs it; None keeps the worker's own default."""
    argv = [sys.executable, "-m", "orchestrator", "worker", "--name", name]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if log_level is not None:
        argv += ["--loglevel", log_level]
    return argv


def start_workers(
    env: WorkerEnv,
    names: Iterable[str],
    *,
    ready: ReadyProbe,
    log_dir: Path,
    stack: ExitStack | None = None,
    concurrency: int | None = None,
    log_level: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> list[Child]:
    """Start a worker process per name (log: `log_dir/NAME.log`), all at once, and return
    once `ready(name)` holds for each, within `ready_timeout_s` in all. If one dies or
    misses the deadline, every one started here is stopped and StartFailed raised.

    With a `stack`, each is stopped when it closes; without, the caller stops them
    (`Child.stop`, `Child.kill`), as a test that restarts workers does."""
    started = [
        spawn(
            name,
            worker_argv(name, concurrency=concurrency, log_level=log_level),
            env=env.env(),
            log_path=log_dir / f"{name}.log",
        )
        for name in names
    ]
    try:
        deadline_s = time.monotonic() + ready_timeout_s
        for worker in started:

            def answered(worker: Child = worker) -> bool:
                worker.check_alive()
                return ready(worker.name)

            left_s = max(0.0, deadline_s - time.monotonic())
            wait_until(answered, what=f"worker {worker.name}", timeout_s=left_s)
    except BaseException:
        for worker in started:
            worker.stop()
        raise
    if stack is not None:
        for worker in started:
            stack.callback(worker.stop)
    return started

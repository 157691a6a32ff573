"""The parts a benchmark starts on this machine, and what the bench commands share about them.

Starting and stopping is `orchestrator.devkit.stage`'s: each part is a process of its own
(the simulator too, so that it never competes with the benchmark for one GIL), registered
for stopping on the caller's ExitStack the moment it exists, and waited for by polling with
a deadline. This module adds the benchmarks' defaults: worker names, quiet logs, the
simulator knobs every command takes, the pids a sampler watches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from orchestrator.devkit import stage
from orchestrator.devkit.simulator import SimulatorConfig
from orchestrator.devkit.stage import (
    Child,
    RedisTarget,
    SimulatorProcess,
    StartFailed,
    WorkerEnv,
    open_redis,
    start_simulator,
)

__all__ = [
    "Child",
    "RedisTarget",
    "SimulatorKnobs",
    "SimulatorProcess",
    "StartFailed",
    "WorkerEnv",
    "new_api_key",
    "open_stage",
    "start_simulator",
    "start_workers",
    "support_pids",
    "worker_names",
]

WORKER_LOG_LEVEL = "WARNING"


class SimulatorKnobs(BaseModel):
    """The simulator's behaviour every bench command lets one set."""

    model_config = ConfigDict(frozen=True)

    latency_ms: float = 20.0
    settle_min_s: float = 0.3
    settle_max_s: float = 1.5

    def simulator_config(self, *, rate_limit_rps: float | None = None) -> SimulatorConfig:
        """A config with a fresh API key, these knobs and the provider's limit (429 beyond)."""
        return SimulatorConfig(
            api_key=new_api_key(),
            latency_ms=self.latency_ms,
            cancel_settle_min_s=self.settle_min_s,
            cancel_settle_max_s=self.settle_max_s,
            rate_limit_rps=rate_limit_rps,
        )


def new_api_key() -> str:
    return stage.new_api_key("sim-bench")


def open_stage(
    stack: ExitStack,
    *,
    prefix: str,
    redis_url: str | None,
    keep_logs: bool,
    config: SimulatorConfig,
) -> tuple[Path, RedisTarget, SimulatorProcess]:
    """A working folder (removed at the end unless `keep_logs`), a Redis and a simulator.

    An external Redis is never flushed: the benchmark's queue name is unique and it reads
    the outcome stream only after the point where it started.
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep_logs:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
    target = open_redis(stack, url=redis_url, directory=workdir / "redis")
    return workdir, target, start_simulator(stack, config, log_dir=workdir)


def worker_names(count: int) -> list[str]:
    return [f"b{number}@bench" for number in range(1, count + 1)]


def start_workers(
    stack: ExitStack,
    target: RedisTarget,
    sim: SimulatorProcess,
    *,
    queue_prefix: str,
    count: int,
    concurrency: int,
    log_dir: Path,
    rate_limit_rps: float = 0.0,
    settings: Mapping[str, str] | None = None,
) -> tuple[WorkerEnv, list[Child]]:
    """`count` worker processes on `target` and `sim`, on a queue of their own, with our
    global limit (0 = off), stopped when `stack` closes; returned once each answers a
    Celery control ping. Also what they share with a producer. `settings`: more
    `RUNCTL_*` values for the workers."""
    from workers.queue import CeleryQueue  # imports Celery: only once workers are wanted

    env = WorkerEnv(
        redis_url=target.url,
        queue=f"{queue_prefix}-{uuid.uuid4().hex[:8]}",
        base_url=sim.base_url,
        api_key=sim.api_key,
        settings={
            "RUNCTL_LOG_LEVEL": WORKER_LOG_LEVEL,
            "RUNCTL_RATE_LIMIT_RPS": str(rate_limit_rps),
            **(settings or {}),
        },
    )
    pings = CeleryQueue(env.producer_settings())
    try:
        workers = stage.start_workers(
            env,
            worker_names(count),
            ready=pings.worker_answers,
            log_dir=log_dir,
            stack=stack,
            concurrency=concurrency,
            log_level=WORKER_LOG_LEVEL,
        )
    finally:
        pings.close()
    return env, workers


def support_pids(sim: SimulatorProcess, target: RedisTarget) -> dict[str, int]:
    """The processes besides the workers that a sampler watches: simulator, bench, Redis."""
    pids = {"simulator": sim.pid, "bench": os.getpid()}
    if target.pid is not None:
        pids["redis"] = target.pid
    return pids

"""`runctl demo`: the main job end to end on one machine, with nothing installed beforehand.

Finds Redis at RUNCTL_REDIS_URL or starts an embedded one, starts the simulator with a few
hundred stuck runs, starts one real worker process (its environment built from scratch by
the stage: no other RUNCTL_*/OPENAI_* setting of the shell reaches it), queues a cancel for
every run, and shows the outcomes arriving live, then a summary. Everything it started, it
stops (the stage's ExitStack).
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from orchestrator.cli.bulk import follow_bulk
from orchestrator.core.models import Outcome, Result
from orchestrator.devkit.simulator import SimulatorConfig
from orchestrator.devkit.stage import (
    SimulatorAdmin,
    StartFailed,
    WorkerEnv,
    new_api_key,
    open_redis,
    start_simulator,
    start_workers,
)
from orchestrator.service.targets import Target
from workers.producer import Producer

WORKER_NAME = "demo@runctl"
FOLLOW_TIMEOUT_S = 300.0
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
WORKER_SETTINGS = {"RUNCTL_DEFAULT_DEADLINE_S": "60", "RUNCTL_LOG_LEVEL": "WARNING"}


def run_demo(*, runs: int, console: Console) -> int:
    """Cancel `runs` simulated stuck runs through a real worker; 0 when all were stopped."""
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="runctl-demo-"))
        configured = os.environ.get("RUNCTL_REDIS_URL", DEFAULT_REDIS_URL)
        target = open_redis(stack, url=configured, directory=workdir / "redis")
        if target.embedded:
            console.print(f"redis: none reachable, started an embedded one at {target.url}")
        else:
            console.print("redis: using the one at RUNCTL_REDIS_URL")
        try:
            sim = start_simulator(stack, _simulator_config(), log_dir=workdir)
            console.print(f"simulator: {sim.base_url}")
            targets = _seed_runs(sim, runs)
            env = WorkerEnv(
                redis_url=target.url,
                queue=f"runctl-demo-{os.getpid()}",
                base_url=sim.base_url,
                api_key=sim.api_key,
                settings=WORKER_SETTINGS,
            )
            producer = Producer(env.producer_settings())
            stack.callback(producer.close)
            [worker] = start_workers(
                env, [WORKER_NAME], ready=producer.worker_answers, log_dir=workdir, stack=stack
            )
        except StartFailed as error:
            console.print(f"[red]the demo could not start[/]: {error}")
            return 1
        console.print(f"worker: pid {worker.pid}, log {worker.log_path}")
        return _cancel_all(producer, targets, console)
    return 1  # pragma: no cover - ExitStack does not swallow; keeps mypy content


def _simulator_config() -> SimulatorConfig:
    """Some latency, a few 429s with `retry-after`, cancels settling in 0.3 to 1.5 s."""
    return SimulatorConfig(
        api_key=new_api_key("sim-demo"),
        latency_ms=20,
        rate_429_rate=0.03,
        retry_after_s=1.0,
        cancel_settle_min_s=0.3,
        cancel_settle_max_s=1.5,
    )


def _seed_runs(sim: SimulatorAdmin, runs: int) -> list[tuple[str, str]]:
    """A realistic incident: most runs stuck in progress, some waiting on tools, a few done."""
    finished = max(1, runs // 25)
    waiting = max(1, runs // 10)
    raced = max(1, runs // 50)
    stuck = max(0, runs - finished - waiting - raced)
    return [
        *sim.seed(finished, status="completed"),
        *sim.seed(waiting, status="requires_action", behavior="requires_action"),
        *sim.seed(raced, status="in_progress", behavior="race_complete"),
        *(sim.seed(stuck, status="in_progress") if stuck else []),
    ]


def _cancel_all(producer: Producer, targets: list[tuple[str, str]], console: Console) -> int:
    started = time.monotonic()
    bulk_id = producer.bulk_cancel(
        (Target(t, r) for t, r in targets),
        on_problem=lambda p: console.print(f"skipped {p}"),
        reason="demo: incident cleanup",
        requested_by="runctl demo",
        source="runctl demo",
    )
    console.print(f"bulk job {bulk_id}: {len(targets)} cancels queued")
    record = follow_bulk(producer, bulk_id, json_output=False, console=console)
    elapsed_s = time.monotonic() - started
    outcomes = list(producer.bulks.outcomes(bulk_id))
    _summary(outcomes, elapsed_s, console)
    bad = {Result.ERROR, Result.REJECTED, Result.TIMED_OUT}
    return 0 if record.done == len(targets) and not any(o.result in bad for o in outcomes) else 1


def _summary(outcomes: list[Outcome], elapsed_s: float, console: Console) -> None:
    if not outcomes:
        return
    durations = sorted(o.duration_s for o in outcomes)
    p50 = durations[len(durations) // 2]
    p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    console.print(
        f"{len(outcomes)} runs settled in {elapsed_s:.1f} s: {len(outcomes) / elapsed_s:.1f} "
        f"runs/s, time to outcome p50 {p50:.2f} s, p99 {p99:.2f} s"
    )

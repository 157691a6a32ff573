"""`runctl demo`: the main job end to end on one machine, with nothing installed beforehand.

Finds Redis at RUNCTL_REDIS_URL or starts an embedded one, starts the simulator with a few
hundred stuck runs, starts one real worker process, queues a cancel for every run, and shows
the outcomes arriving live, then a summary. Everything it started, it stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from pydantic import SecretStr
from rich.console import Console

from orchestrator.cli.bulk import follow_bulk
from orchestrator.core.models import Outcome, Result
from orchestrator.core.settings import Settings
from orchestrator.devkit.embedded_redis import is_reachable, start_embedded
from orchestrator.devkit.simulator import SimulatorConfig, start_in_thread
from orchestrator.service.targets import Target
from workers.producer import Producer

DEMO_KEY = "sim-demo-key"
WORKER_NAME = "demo@runctl"
WORKER_READY_TIMEOUT_S = 60.0
FOLLOW_TIMEOUT_S = 300.0


def run_demo(*, runs: int, console: Console) -> int:
    """Cancel `runs` simulated stuck runs through a real worker; 0 when all were stopped."""
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="runctl-demo-"))
        redis_url = _redis_url(stack, workdir, console)
        sim = start_in_thread(
            SimulatorConfig(
                api_key=DEMO_KEY,
                latency_ms=20,
                rate_429_rate=0.03,
                retry_after_s=1.0,
                cancel_settle_min_s=0.3,
                cancel_settle_max_s=1.5,
            )
        )
        stack.callback(sim.stop)
        console.print(f"simulator: {sim.base_url}")
        targets = _seed_runs(sim.base_url, runs)
        env = _worker_env(redis_url, sim.base_url, queue=f"runctl-demo-{os.getpid()}")
        settings = _settings(env)
        log_path = workdir / "worker.log"
        worker = _start_worker(env, log_path)
        stack.callback(_stop, worker)
        console.print(f"worker: pid {worker.pid}, log {log_path}")
        return _cancel_all(settings, targets, worker, console)
    return 1  # pragma: no cover - ExitStack does not swallow; keeps mypy content


def _redis_url(stack: ExitStack, workdir: Path, console: Console) -> str:
    configured = os.environ.get("RUNCTL_REDIS_URL", "redis://localhost:6379/0")
    if is_reachable(configured):
        console.print("redis: using the one at RUNCTL_REDIS_URL")
        return configured
    embedded = start_embedded(directory=workdir / "redis")
    stack.callback(embedded.stop)
    console.print(f"redis: none reachable, started an embedded one at {embedded.url}")
    return embedded.url


def _seed_runs(base_url: str, runs: int) -> list[tuple[str, str]]:
    """A realistic incident: most runs stuck in progress, some waiting on tools, a few done."""
    admin = base_url.removesuffix("/v1") + "/_sim/runs"
    finished = max(1, runs // 25)
    waiting = max(1, runs // 10)
    raced = max(1, runs // 50)
    plan = [
        {"count": finished, "status": "completed"},
        {"count": waiting, "status": "requires_action", "behavior": "requires_action"},
        {"count": raced, "status": "in_progress", "behavior": "race_complete"},
    ]
    plan.append({"count": max(0, runs - finished - waiting - raced), "status": "in_progress"})
    targets: list[tuple[str, str]] = []
    with httpx.Client(timeout=30) as client:
        for body in plan:
            if body["count"]:
                made = client.post(admin, json=body).raise_for_status().json()["runs"]
                targets += [(r["thread_id"], r["run_id"]) for r in made]
    return targets


def _worker_env(redis_url: str, base_url: str, *, queue: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        RUNCTL_REDIS_URL=redis_url,
        OPENAI_BASE_URL=base_url,
        RUNCTL_QUEUE_NAME=queue,
        RUNCTL_DEFAULT_DEADLINE_S="60",
    )
    env["OPENAI_API_KEY"] = DEMO_KEY  # the workers' own; never queued
    return env


def _settings(env: dict[str, str]) -> Settings:
    """The producer's settings: the same Redis, queue and deadline as the worker's."""
    return Settings(
        redis_url=SecretStr(env["RUNCTL_REDIS_URL"]),
        queue_name=env["RUNCTL_QUEUE_NAME"],
        default_deadline_s=float(env["RUNCTL_DEFAULT_DEADLINE_S"]),
    )


def _start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "worker",
            "--loglevel",
            "WARNING",
            "--name",
            WORKER_NAME,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cancel_all(
    settings: Settings,
    targets: list[tuple[str, str]],
    worker: subprocess.Popen[bytes],
    console: Console,
) -> int:
    producer = Producer(settings)
    try:
        if not _worker_ready(producer, worker):
            console.print("[red]the worker did not start; see its log")
            return 1
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
    finally:
        producer.close()
    _summary(outcomes, elapsed_s, console)
    bad = {Result.ERROR, Result.REJECTED, Result.TIMED_OUT}
    return 0 if record.done == len(targets) and not any(o.result in bad for o in outcomes) else 1


def _worker_ready(producer: Producer, worker: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline and worker.poll() is None:
        if producer.worker_answers(WORKER_NAME):
            return True
    return False


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

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
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import redis
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.embedded_redis import is_reachable, start_embedded
from orchestrator.models import Outcome, Result
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorConfig, start_in_thread
from orchestrator.watching import read_batch, stream_tail
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
        OPENAI_API_KEY=DEMO_KEY,
        RUNCTL_QUEUE_NAME=queue,
        RUNCTL_DEFAULT_DEADLINE_S="60",
    )
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
    if not _worker_ready(producer, worker):
        console.print("[red]the worker did not start; see its log")
        producer.close()
        return 1
    client = producer.redis
    start_id = stream_tail(client)
    started = time.monotonic()
    pending = {
        producer.cancel(thread_id, run_id, reason="demo: incident cleanup").job_id
        for thread_id, run_id in targets
    }
    console.print(f"queued {len(pending)} cancel jobs")
    outcomes = _follow(client, start_id, pending, worker, console)
    elapsed_s = time.monotonic() - started
    producer.close()
    _summary(outcomes, len(targets), elapsed_s, console)
    bad = {Result.ERROR, Result.REJECTED}
    ok = len(outcomes) == len(targets) and not any(o.result in bad for o in outcomes)
    return 0 if ok else 1


def _worker_ready(producer: Producer, worker: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline and worker.poll() is None:
        if producer.worker_answers(WORKER_NAME):
            return True
    return False


def _follow(
    client: redis.Redis,
    last_id: str,
    pending: set[str],
    worker: subprocess.Popen[bytes],
    console: Console,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    counts: Counter[str] = Counter()
    total = len(pending)
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    columns = (
        TextColumn("[bold]cancelling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("", total=total)
        while pending and time.monotonic() < deadline and worker.poll() is None:
            last_id, batch = read_batch(client, last_id, block_ms=500)
            for outcome in batch:
                if outcome.job_id in pending:
                    pending.discard(outcome.job_id)
                    outcomes.append(outcome)
                    counts[outcome.result.value] += 1
            described = "  ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            bar.update(task, completed=total - len(pending), description=described)
    if worker.poll() is not None:
        console.print(f"[red]the worker exited with code {worker.returncode}; see its log")
    elif pending:
        console.print(f"[red]{len(pending)} jobs had no outcome after {FOLLOW_TIMEOUT_S:g} s")
    return outcomes


def _summary(outcomes: list[Outcome], total: int, elapsed_s: float, console: Console) -> None:
    table = Table(title=f"{len(outcomes)} of {total} runs settled in {elapsed_s:.1f} s")
    table.add_column("result")
    table.add_column("runs", justify="right")
    for result, n in Counter(o.result.value for o in outcomes).most_common():
        table.add_row(result, str(n))
    console.print(table)
    if outcomes:
        durations = sorted(o.duration_s for o in outcomes)
        p50 = durations[len(durations) // 2]
        p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
        console.print(
            f"throughput {len(outcomes) / elapsed_s:.1f} runs/s, time to outcome "
            f"p50 {p50:.2f} s, p99 {p99:.2f} s"
        )

"""Requests per run and settle-to-outcome latency per settle shape: `python -m bench.poll_schedule`.

For each settle shape (fixed 0.5 s; uniform 0.3-1.5 s; log-normal with median 1 s and p99
20 s; uniform 0.3-1.5 s from a server that sends no hint), on its own simulator (so its
own learned histogram) sending `openai-poll-after-ms: --hint-ms` (except `no-hint`):

- `learned`: our worker with the learned schedule (the default), after `--warmup-rounds`
  warm-up bulks of `--warmup` runs that it learns from, over a measured bulk of `--runs`;
- `fixed`: our worker with `RUNCTL_POLL_LEARNED=false` (the cadence before issue 11);
- `async_sdk`: the async SDK peer (`bench.peers`), for its requests per run.

Requests per run count every API request the simulator saw for the measured runs (the
counters are reset before each); latency is each outcome's `finished_at` minus the unix
time the simulator says its run settled (`GET /_sim/settled`). Issue 11's targets, for
uniform 0.3-1.5 s with the 250 ms hint: at most 2.3 requests per run, p50 latency at most
0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench import peers
from bench.machine import describe_machine
from bench.processes import SimulatorProcess, new_api_key, open_stage, worker_names
from orchestrator.devkit import stage
from orchestrator.devkit.simulator import SimulatorConfig
from orchestrator.devkit.simulator.config import SettleShape
from orchestrator.devkit.stage import RedisTarget, WorkerEnv
from orchestrator.service.targets import Problem, Target

REQUESTS_TARGET = 2.3
P50_TARGET_S = 0.3
FOLLOW_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Shape:
    name: str
    knobs: dict[str, Any]
    hint: bool = True


SHAPES = [
    Shape("fixed-0.5s", {"cancel_settle_shape": SettleShape.FIXED, "cancel_settle_min_s": 0.5}),
    Shape("uniform-0.3-1.5s", {"cancel_settle_min_s": 0.3, "cancel_settle_max_s": 1.5}),
    Shape(
        "lognormal-p99-20s",
        {
            "cancel_settle_shape": SettleShape.LOGNORMAL,
            "cancel_settle_median_s": 1.0,
            "cancel_settle_p99_s": 20.0,
        },
    ),
    Shape("no-hint-uniform", {"cancel_settle_min_s": 0.3, "cancel_settle_max_s": 1.5}, hint=False),
]


def start_tuned_workers(
    stack: ExitStack,
    target: RedisTarget,
    sim: SimulatorProcess,
    *,
    learned: bool,
    concurrency: int,
    log_dir: Path,
) -> WorkerEnv:
    """One worker on a queue of its own, with the learned schedule on or off (no limit)."""
    from workers.queue import CeleryQueue  # imports Celery: only once workers are wanted

    env = WorkerEnv(
        redis_url=target.url,
        queue=f"runctl-poll-{uuid.uuid4().hex[:8]}",
        base_url=sim.base_url,
        api_key=sim.api_key,
        settings={
            "RUNCTL_LOG_LEVEL": "WARNING",
            "RUNCTL_RATE_LIMIT_RPS": "0",
            "RUNCTL_POLL_LEARNED": "true" if learned else "false",
        },
    )
    pings = CeleryQueue(env.producer_settings())
    try:
        stage.start_workers(
            env,
            worker_names(1),
            ready=pings.worker_answers,
            log_dir=log_dir,
            stack=stack,
            concurrency=concurrency,
            log_level="WARNING",
        )
    finally:
        pings.close()
    return env


def settled_at(sim: SimulatorProcess) -> dict[str, float]:
    reply = httpx.get(f"{sim.admin_url}/settled", timeout=60)
    rows = reply.raise_for_status().json()["runs"]
    return {r["run_id"]: r["settled_at"] for r in rows if r["settled_at"] is not None}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def one_bulk(sim: SimulatorProcess, env: WorkerEnv, runs: int) -> dict[str, Any]:
    """Seed `runs`, cancel them in one bulk job, follow it to the end; what it cost."""
    from workers.producer import Producer

    sim.reset()
    seeded = sim.seed(runs, status="in_progress")
    producer = Producer(env.producer_settings())
    problems: list[Problem] = []
    try:
        bulk_id = producer.bulk_cancel(
            (Target(t, r) for t, r in seeded), on_problem=problems.append, source="bench"
        )
        deadline = time.monotonic() + FOLLOW_TIMEOUT_S
        while True:
            record = producer.bulks.get(bulk_id)
            if record is not None and record.finished:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bulk {bulk_id} did not finish in {FOLLOW_TIMEOUT_S:g} s")
            time.sleep(0.2)
        outcomes = list(producer.bulks.outcomes(bulk_id))
    finally:
        producer.close()
    stats = sim.stats()
    settled = settled_at(sim)
    latencies = [
        o.finished_at.timestamp() - settled[o.run_id] for o in outcomes if o.run_id in settled
    ]
    return {
        "runs": runs,
        "outcomes": len(outcomes),
        "results": dict(Counter(o.result.value for o in outcomes).most_common()),
        "requests_per_run": round(stats["requests_total"] / max(1, runs), 3),
        "settle_to_outcome_p50_s": pct(latencies, 0.5),
        "settle_to_outcome_p90_s": pct(latencies, 0.9),
        "settle_to_outcome_mean_s": round(statistics.mean(latencies), 3) if latencies else None,
    }


def measure_shape(shape: Shape, options: argparse.Namespace, console: Console) -> dict[str, Any]:
    result: dict[str, Any] = {
        "shape": shape.name,
        "hint_ms": options.hint_ms if shape.hint else None,
    }
    with ExitStack() as stack:
        workdir, target, sim = open_stage(
            stack,
            prefix=f"runctl-poll-{shape.name}-",
            redis_url=options.redis_url,
            keep_logs=False,
            config=SimulatorConfig(
                api_key=peers_key(),
                latency_ms=options.latency_ms,
                poll_after_ms=options.hint_ms if shape.hint else None,
                **shape.knobs,
            ),
        )
        for mode, learned in (("learned", True), ("fixed", False)):
            with ExitStack() as workers_stack:
                deployment = start_tuned_workers(
                    workers_stack,
                    target,
                    sim,
                    learned=learned,
                    concurrency=options.concurrency,
                    log_dir=workdir,
                )
                if learned:
                    # Several bulks: a worker rereads the histogram every 2 s, so one big
                    # bulk would teach it one round only.
                    for _ in range(options.warmup_rounds):
                        one_bulk(sim, deployment, options.warmup)
                result[mode] = one_bulk(sim, deployment, options.runs)
                console.print(f"{shape.name} {mode}: {result[mode]}")
        if options.peer:
            peer_options = peers.Options(runs=options.runs, latency_ms=options.latency_ms)
            runner = peers.peer_runners(peer_options.model_copy(update={"peer": "async"}))[0]
            peer = peers.measure(runner, sim, peer_options, console)
            result["async_sdk"] = {
                "requests_per_run": peer.simulator.requests_per_run,
                "runs_per_s": peer.report.runs_per_s,
            }
            console.print(f"{shape.name} async_sdk: {result['async_sdk']}")
    return result


def peers_key() -> str:
    return new_api_key()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.poll_schedule", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100, help="runs per warm-up bulk")
    parser.add_argument("--warmup-rounds", type=int, default=6, help="warm-up bulks, in turn")
    parser.add_argument("--hint-ms", type=int, default=250)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--shape", action="append", choices=[s.name for s in SHAPES])
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", dest="json_output", action="store_true")
    options = parser.parse_args(argv)
    console = Console(stderr=True)
    load = os.getloadavg()
    shapes = [s for s in SHAPES if not options.shape or s.name in options.shape]
    report = {
        "machine": describe_machine().model_dump(),
        "load_avg_at_start": [round(x, 2) for x in load],
        "shapes": [measure_shape(s, options, console) for s in shapes],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report, indent=None if options.json_output else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

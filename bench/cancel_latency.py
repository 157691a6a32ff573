"""How soon `runctl cancel T R --wait` prints the outcome after the run settles:
`python -m bench.cancel_latency`.

A simulator whose runs settle a fixed `--settle-s` (0.5 s) after their cancel, one worker,
and a Redis (`--redis-url`, or a private embedded one). The worker first learns the
connection's settle times from `--warmup-rounds` warm-up bulks of `--warmup` runs (as a
fleet that has been running would have); then, `--runs` times, one run is seeded and
`runctl cancel T R --wait --json` is started in a new process, and the time its outcome
line arrives on stdout is compared with the unix time the simulator says the run settled.
The same is done with a worker on the cadence before issue 11 (`RUNCTL_POLL_LEARNED=false`)
as the peer.

Issue 11's target: the outcome printed at most 0.3 s after the run settles (idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from rich.console import Console

from bench.machine import describe_machine
from bench.poll_schedule import one_bulk, settled_at, start_tuned_workers
from bench.processes import SimulatorProcess, new_api_key, open_stage
from orchestrator.devkit.simulator import SimulatorConfig
from orchestrator.devkit.simulator.config import SettleShape
from orchestrator.devkit.stage import RedisTarget, WorkerEnv

TARGET_S = 0.3


def cancel_and_wait(sim: SimulatorProcess, deployment: WorkerEnv) -> dict[str, Any]:
    [(thread_id, run_id)] = sim.seed(1, status="in_progress")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
    env.update(RUNCTL_REDIS_URL=deployment.redis_url, RUNCTL_QUEUE_NAME=deployment.queue)
    started = time.time()
    with subprocess.Popen(
        [sys.executable, "-c", "from orchestrator.cli import main; main()", "cancel",
         thread_id, run_id, "--wait", "--json", "--timeout", "60"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        process.stdout.readline()  # {"job_id": ...}
        outcome_line = process.stdout.readline()
        printed_at = time.time()
        process.wait(timeout=30)
    outcome = json.loads(outcome_line)
    settled = settled_at(sim)[run_id]
    return {
        "settle_to_printed_s": printed_at - settled,
        "command_s": printed_at - started,
        "result": outcome["result"],
    }


def measure(
    mode: str,
    learned: bool,
    options: argparse.Namespace,
    console: Console,
    sim: SimulatorProcess,
    target: RedisTarget,
    workdir: Any,
) -> dict[str, Any]:
    with ExitStack() as stack:
        deployment = start_tuned_workers(
            stack, target, sim, learned=learned, concurrency=100, log_dir=workdir
        )
        if learned:
            for _ in range(options.warmup_rounds):
                one_bulk(sim, deployment, options.warmup)
        rows = [cancel_and_wait(sim, deployment) for _ in range(options.runs)]
    latencies = [r["settle_to_printed_s"] for r in rows]
    result = {
        "runs": len(rows),
        "results": sorted({str(r["result"]) for r in rows}),
        "settle_to_printed_p50_s": round(statistics.median(latencies), 3),
        "settle_to_printed_max_s": round(max(latencies), 3),
        "command_p50_s": round(statistics.median(r["command_s"] for r in rows), 3),
    }
    console.print(f"{mode}: {result}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cancel_latency", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=50, help="runs per warm-up bulk")
    parser.add_argument("--warmup-rounds", type=int, default=6)
    parser.add_argument("--settle-s", type=float, default=0.5)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", dest="json_output", action="store_true")
    options = parser.parse_args(argv)
    console = Console(stderr=True)
    load = os.getloadavg()
    report: dict[str, Any] = {"machine": describe_machine().model_dump()}
    with ExitStack() as stack:
        workdir, target, sim = open_stage(
            stack,
            prefix="runctl-latency-",
            redis_url=options.redis_url,
            keep_logs=False,
            config=SimulatorConfig(
                api_key=new_api_key(),
                latency_ms=options.latency_ms,
                cancel_settle_shape=SettleShape.FIXED,
                cancel_settle_min_s=options.settle_s,
                cancel_settle_max_s=options.settle_s,
            ),
        )
        for mode, learned in (("learned", True), ("fixed_cadence", False)):
            report[mode] = measure(mode, learned, options, console, sim, target, workdir)
    report["load_avg_at_start"] = [round(x, 2) for x in load]
    report["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["met"] = report["learned"]["settle_to_printed_p50_s"] <= TARGET_S
    print(json.dumps(report, indent=None if options.json_output else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every kind against the simulator, then a mixed fleet: `python -m bench.kinds`.

One go, on this machine: a private Redis (or `--redis-url`), the simulator in its own
process (every kind under its own prefix), K worker processes configured with four
connections (openai-assistants, azure-openai-assistants, langgraph, openai-responses), each
with its own rate limit. Then, per kind, N stuck runs cancelled in one bulk job; then one bulk
file spanning all four kinds (N runs each). For each: outcomes, wall time, runs/s, the
simulator's 429s, and the busiest second of requests per connection (which must stay within
the connection's own limit). Prints a Markdown table; exit code 0 when nothing was lost, every
run ended cancelled and no 429 was answered.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.processes import SimulatorProcess, WorkerEnv, new_api_key, open_stage, worker_names
from orchestrator.core.models import Result
from orchestrator.devkit import stage
from orchestrator.devkit.simulator import SimulatorConfig
from orchestrator.service.targets import Problem, Target

# connection -> (kind, simulator prefix after the host, seed id style, route prefix in the log)
CONNECTIONS: dict[str, tuple[str, str, str, str]] = {
    "openai": ("openai-assistants", "/v1", "openai", ""),
    "azure": ("azure-openai-assistants", "/azure", "openai", "azure-openai-assistants:"),
    "graphs": ("langgraph", "/langgraph", "uuid", "langgraph:"),
    "responses": ("openai-responses", "/v1", "response", "responses:"),
}
KEY_ENV = "BENCH_PROVIDER_KEY"  # every connection's key variable (the simulator's key)


def connections_toml(root: str, limits: dict[str, float]) -> str:
    tables = []
    for name, (kind, prefix, _, _) in CONNECTIONS.items():
        extra = 'api_version = "2024-05-01-preview"\n' if kind.startswith("azure") else ""
        tables.append(
            f'[providers.{name}]\nkind = "{kind}"\nbase_url = "{root}{prefix}"\n'
            f'api_key_env = "{KEY_ENV}"\nrate_limit_rps = {limits[name]}\n{extra}'
        )
    return "\n".join(tables)


def seed(sim: SimulatorProcess, name: str, count: int) -> list[Target]:
    ids = CONNECTIONS[name][2]
    reply = httpx.post(f"{sim.admin_url}/runs", timeout=120,
                       json={"count": count, "status": "in_progress", "ids": ids})  # fmt: skip
    runs: list[dict[str, str]] = reply.raise_for_status().json()["runs"]
    return [
        Target(None if ids == "response" else r["thread_id"], r["run_id"], provider=name)
        for r in runs
    ]


def busiest_second(requests: list[dict[str, Any]], route_prefix: str, name: str) -> int:
    """The most requests to one connection's routes within any one second."""
    times = sorted(
        r["t"] for r in requests
        if (r["route"].startswith(route_prefix) if route_prefix else ":" not in r["route"])
        and (name != "openai" or r["route"] in {"cancel_run", "retrieve_run"})
    )  # fmt: skip
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def bulk(deployment: WorkerEnv, targets: list[Target], timeout_s: float) -> dict[str, Any]:
    from workers.producer import Producer

    producer = Producer(deployment.producer_settings())
    problems: list[Problem] = []
    try:
        started = time.monotonic()
        bulk_id = producer.bulk_cancel(targets, on_problem=problems.append)
        deadline = started + timeout_s
        while True:
            record = producer.bulks.get(bulk_id)
            if record is not None and record.finished:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        wall_s = time.monotonic() - started
        outcomes = list(producer.bulks.outcomes(bulk_id))
    finally:
        producer.close()
    results = Counter(o.result.value for o in outcomes)
    return {
        "runs": len(targets),
        "outcomes": len(outcomes),
        "lost": len(targets) - len(outcomes),
        "wall_s": round(wall_s, 2),
        "runs_per_s": round(len(outcomes) / wall_s, 1) if wall_s else 0.0,
        "results": dict(results),
        "problems": len(problems),
        "ok": results == Counter({Result.CANCELLED.value: len(targets)}) and not problems,
    }


def measure(
    sim: SimulatorProcess,
    deployment: WorkerEnv,
    targets: list[Target],
    names: Sequence[str],
    limits: dict[str, float],
    timeout_s: float,
) -> dict[str, Any]:
    """One bulk job over `targets` (seeded after the simulator's last reset)."""
    row = bulk(deployment, targets, timeout_s)
    log = httpx.get(f"{sim.admin_url}/requests", timeout=120)
    requests: list[dict[str, Any]] = log.raise_for_status().json()["requests"]
    row["429s"] = sim.stats()["by_status"].get("429", 0)
    row["busiest_s"] = {
        n: f"{busiest_second(requests, CONNECTIONS[n][3], n)}/{limits[n]:g}" for n in names
    }
    return row


def start_fleet(
    stack: ExitStack, env: WorkerEnv, *, count: int, concurrency: int, log_dir: Path
) -> None:
    from workers.queue import CeleryQueue  # imports Celery: only once workers are wanted

    pings = CeleryQueue(env.producer_settings())
    try:
        stage.start_workers(env, worker_names(count), ready=pings.worker_answers,
                            log_dir=log_dir, stack=stack, concurrency=concurrency,
                            log_level="WARNING")  # fmt: skip
    finally:
        pings.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kinds", description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="runs per kind")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--limits", default="openai=60,azure=40,graphs=30,responses=50",
                        help="requests/s per connection")  # fmt: skip
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--redis-url", default=os.environ.get("RUNCTL_REDIS_URL"))
    args = parser.parse_args(argv)
    limits = {k: float(v) for k, v in (p.split("=") for p in args.limits.split(","))}
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows: list[tuple[str, dict[str, Any]]] = []
    with ExitStack() as stack:
        config = SimulatorConfig(api_key=new_api_key(), latency_ms=args.latency_ms,
                                 cancel_settle_min_s=0.3, cancel_settle_max_s=1.5)  # fmt: skip
        workdir, target, sim = open_stage(stack, prefix="runctl-kinds-", redis_url=args.redis_url,
                                          keep_logs=False, config=config)  # fmt: skip
        config_path = workdir / "runctl.toml"
        config_path.write_text(connections_toml(sim.base_url.removesuffix("/v1"), limits))
        deployment = WorkerEnv(
            redis_url=target.url, queue=f"runctl-kinds-{uuid.uuid4().hex[:8]}",
            base_url=sim.base_url, api_key=sim.api_key,
            settings={"RUNCTL_CONFIG": str(config_path), KEY_ENV: sim.api_key,
                      "RUNCTL_LOG_LEVEL": "WARNING"},
        )  # fmt: skip
        start_fleet(stack, deployment, count=args.workers, concurrency=args.concurrency,
                    log_dir=workdir)  # fmt: skip
        for name in CONNECTIONS:
            sim.reset()  # counters and the request log belong to this row only
            targets = seed(sim, name, args.runs)
            rows.append((name, measure(sim, deployment, targets, [name], limits, args.timeout_s)))
        sim.reset()
        mixed = [t for name in CONNECTIONS for t in seed(sim, name, args.runs)]
        row = measure(sim, deployment, mixed, list(CONNECTIONS), limits, args.timeout_s)
        rows.append(("mixed (4 connections)", row))
    print("| run | runs | outcomes | lost | wall s | runs/s | results | 429s | busiest s / limit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, row in rows:
        busiest = ", ".join(f"{n} {v}" for n, v in row["busiest_s"].items())
        print(f"| {label} | {row['runs']} | {row['outcomes']} | {row['lost']} | {row['wall_s']} | "
              f"{row['runs_per_s']} | {row['results']} | {row['429s']} | {busiest} |")  # fmt: skip
    return 0 if all(r["ok"] and r["429s"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

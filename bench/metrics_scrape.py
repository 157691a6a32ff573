"""Scraping a busy worker: `python -m bench.metrics_scrape [--runs N] [--compare]`.

A private Redis (or `--redis-url`), the simulator in its own process, one real worker
(`--concurrency`, default 1000) serving /metrics, N stuck runs cancelled as one bulk job;
meanwhile /metrics is scraped every `--every-s` and each scrape's wall time recorded, until
the bulk job is finished. Prints the scrape times and the bulk job's throughput as JSON.
`--compare` runs the same bulk job again on a worker with metrics off, for the throughput.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from typing import Any

import httpx

from bench.machine import describe_machine
from bench.processes import SimulatorKnobs, open_stage, start_workers
from orchestrator.devkit.embedded_redis import free_port
from orchestrator.service.targets import Target


def one_bulk(runs: int, *, metrics: bool, args: argparse.Namespace) -> dict[str, Any]:
    from workers.producer import Producer  # imports Celery: only once workers are wanted

    knobs = SimulatorKnobs(latency_ms=args.latency_ms)
    port = free_port()
    with ExitStack() as stack:
        workdir, target, sim = open_stage(
            stack, prefix="runctl-scrape-", redis_url=args.redis_url, keep_logs=False,
            config=knobs.simulator_config(),
        )  # fmt: skip
        settings = {"RUNCTL_METRICS_PORT": str(port), "RUNCTL_METRICS_HOST": "127.0.0.1"}
        env, _ = start_workers(stack, target, sim, queue_prefix="scrape", count=1,
                               concurrency=args.concurrency, log_dir=workdir,
                               settings=settings if metrics else {})  # fmt: skip
        seeded = sim.seed(runs, status="in_progress")
        producer = Producer(env.producer_settings())
        stack.callback(producer.close)
        started = time.monotonic()
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in seeded), on_problem=print)
        scrapes_ms: list[float] = []
        while True:
            record = producer.bulks.get(bulk_id)
            if record is not None and record.finished:
                break
            if metrics:
                began = time.perf_counter()
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).raise_for_status()
                scrapes_ms.append((time.perf_counter() - began) * 1000)
            time.sleep(args.every_s)
        elapsed_s = time.monotonic() - started
    result: dict[str, Any] = {"metrics": metrics, "runs": runs,
                              "runs_per_s": round(runs / elapsed_s, 1)}  # fmt: skip
    if scrapes_ms:
        result["scrapes"] = len(scrapes_ms)
        result["scrape_ms"] = {
            "median": round(statistics.median(scrapes_ms), 1),
            "p99": round(statistics.quantiles(scrapes_ms, n=100, method="inclusive")[98], 1),
            "max": round(max(scrapes_ms), 1),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--every-s", type=float, default=0.2)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    results = [one_bulk(args.runs, metrics=True, args=args)]
    if args.compare:
        results.append(one_bulk(args.runs, metrics=False, args=args))
    print(json.dumps({"machine": describe_machine().model_dump(), "results": results}, indent=2))


if __name__ == "__main__":
    main()

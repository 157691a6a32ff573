"""What metrics cost: `python -m bench.metrics_cost [--redis-url URL] [--keys N]`.

1. One scrape of the fleet's gauges (`store.fleet.read_fleet`) against a Redis holding
   `--keys` outcome keys, `--workers` worker cards and `--bulks` bulk records, timed over
   `--reads` reads; beside it, one full `SCAN MATCH runctl:lease:*` (what counting live
   workers by their lease keys would cost on the same keyspace).
2. The worker side: one `PrometheusTelemetry.provider_request` and one
   `outcome_published`, in microseconds per call (what each request and each job pays).

The Redis is the one at `--redis-url` if it answers (database 3 is emptied), else a private
embedded one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry

from bench.machine import describe_machine
from orchestrator.core.models import Outcome, Result
from orchestrator.devkit.stage import open_redis
from orchestrator.metrics import PrometheusTelemetry
from orchestrator.store import keys
from orchestrator.store.bulk import BulkStore
from orchestrator.store.fleet import read_fleet
from orchestrator.store.leases import Leases, WorkerCard


def fill(client: redis.Redis, *, outcomes: int, workers: int, bulks: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(outcomes):
        pipe.set(keys.outcome(f"job_{i:08d}"), "{}")
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    leases = Leases(client, lease_s=600)
    for i in range(workers):
        leases.renew(f"host:{i}:bench", WorkerCard(host="host", pid=i, metrics_port=9470 + i))
    store = BulkStore(client, keep_s=3600)
    for i in range(bulks):
        store.create(f"bulk_{i}", source="bench", requested_by="bench", rate_limit_rps=None)


def timed_ms(fn: Callable[[], object], times: int) -> list[float]:
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        taken.append((time.perf_counter() - started) * 1000)
    return taken


def scan_leases(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match="runctl:lease:*", count=1000))


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--bulks", type=int, default=100)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    with ExitStack() as stack:
        target = open_redis(stack, url=args.redis_url, directory=Path(tempfile.mkdtemp()))
        client = redis.Redis.from_url(target.url)
        client.flushdb()
        fill(client, outcomes=args.keys, workers=args.workers, bulks=args.bulks)
        reads = timed_ms(
            lambda: read_fleet(client, queue_name="runctl", now_s=time.time()), args.reads
        )
        scans = timed_ms(lambda: scan_leases(client), 5)
        client.flushdb()
        client.close()
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry, providers=["openai"])
    now = datetime.now(UTC)
    outcome = Outcome(job_id="j", run_id="r", result=Result.CANCELLED, requested_at=now,
                      finished_at=now, duration_s=0.0)  # fmt: skip
    report = {
        "machine": describe_machine().model_dump(),
        "keyspace": {"outcome_keys": args.keys, "workers": args.workers, "bulks": args.bulks},
        "read_fleet_ms": {
            "median": round(statistics.median(reads), 3),
            "p99": round(statistics.quantiles(reads, n=100, method="inclusive")[98], 3),
        },
        "scan_lease_keys_ms": {"median": round(statistics.median(scans), 1)},
        "provider_request_us": round(
            per_call_us(lambda: telemetry.provider_request("openai", "GET", 200, 0.01), 100_000),
            2,
        ),
        "outcome_published_us": round(
            per_call_us(
                lambda: telemetry.outcome_published(outcome, published_at_s=now.timestamp()),
                100_000,
            ),
            2,
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

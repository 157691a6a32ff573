"""How fast real workers stop a burst of stuck runs: `python -m bench.cancel_throughput`.

One go, on this machine: a private Redis (or `--redis-url`), the simulator in its own
process with `--latency-ms` on every answer and cancels settling in the given range, N stuck
runs, K real worker processes, then all N cancels queued at once and the outcome stream
followed until every job has its outcome. Prints a table, or with `--json` one JSON object.
Everything it started is stopped, on success, failure or Ctrl-C. Exit code 0 when every run
was confirmed cancelled.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from bench.machine import Machine, describe_machine
from bench.processes import (
    Child,
    SimulatorKnobs,
    StartFailed,
    WorkerEnv,
    open_stage,
    start_workers,
    support_pids,
    worker_names,
)
from bench.sampling import Sampler, Usage
from orchestrator.core.models import Outcome, Result
from orchestrator.store import keys
from orchestrator.store.outcomes import read_batch, stream_tail

FOLLOW_TIMEOUT_S = 300.0
DEFAULT_CONCURRENCY = 1000  # the worker's own default (RUNCTL_WORKER_CONCURRENCY)
EXIT_INTERRUPTED = 130


class Options(SimulatorKnobs):
    runs: int = 1000
    workers: int = 1
    concurrency: int = DEFAULT_CONCURRENCY
    redis_url: str | None = None
    follow_timeout_s: float = FOLLOW_TIMEOUT_S
    keep_logs: bool = False
    json_output: bool = False


class Percentiles(BaseModel):
    model_config = ConfigDict(frozen=True)

    p50: float
    p90: float
    p99: float
    max: float


class Report(BaseModel):
    """One measurement: the setup, the figures, and the machine they were taken on."""

    model_config = ConfigDict(frozen=True)

    runs: int
    workers: int
    concurrency: int
    latency_ms: float
    settle_min_s: float
    settle_max_s: float
    redis: str  # "embedded" or "external"
    outcomes: int
    enqueue_s: float
    wall_s: float  # first job requested -> last outcome finished
    runs_per_s: float
    time_to_outcome_s: Percentiles | None
    results: dict[str, int]
    peak_inflight: int | None  # sampled count of jobs started and not yet finished
    worker_usage: list[Usage]
    support_usage: list[Usage]  # the simulator, an embedded Redis, this process
    machine_busy_cpu_s: float  # all processes on the machine during the measurement
    other_cpu_s: float  # of which not ours: other work competing for the cores
    load_1m_at_start: float
    sim_requests_total: int
    sim_requests_by_route: dict[str, int]
    requests_per_run: float
    machine: Machine

    @property
    def ok(self) -> bool:
        return self.outcomes == self.runs and self.results == {Result.CANCELLED.value: self.runs}


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.cancel_throughput", description=__doc__)
    add = parser.add_argument
    add("--runs", type=int, default=1000, help="stuck runs to cancel")
    add("--latency-ms", type=float, default=20.0, help="simulator latency on every answer")
    add("--settle-min-s", type=float, default=0.3, help="cancelling -> cancelled, at least")
    add("--settle-max-s", type=float, default=1.5, help="cancelling -> cancelled, at most")
    add("--workers", type=int, default=1, help="worker processes")
    add("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="jobs per worker at once")
    add("--redis-url", default=None, help="use this Redis (default: RUNCTL_REDIS_URL if it "
        "answers, else a private embedded one)")  # fmt: skip
    add("--follow-timeout-s", type=float, default=FOLLOW_TIMEOUT_S, help="give up after this")
    add("--keep-logs", action="store_true", help="keep the working directory and its logs")
    add("--json", dest="json_output", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.redis_url is None:
        args.redis_url = os.environ.get("RUNCTL_REDIS_URL")
    return Options(**vars(args))


def run(options: Options, console: Console) -> Report:
    """Set everything up, cancel every run, tear everything down; the figures."""
    machine = describe_machine()
    load_1m = os.getloadavg()[0]
    with ExitStack() as stack:
        workdir, target, sim = open_stage(
            stack,
            prefix="runctl-bench-",
            redis_url=options.redis_url,
            keep_logs=options.keep_logs,
            config=options.simulator_config(),
        )
        deployment, workers = start_workers(
            stack,
            target,
            sim,
            queue_prefix="runctl-bench",
            count=options.workers,
            concurrency=options.concurrency,
            log_dir=workdir,
        )
        targets = sim.seed(options.runs, status="in_progress")
        console.print(
            f"redis {'embedded' if target.embedded else 'external'}, simulator pid "
            f"{sim.pid}, workers {[w.pid for w in workers]}, logs in {workdir}"
        )
        support = support_pids(sim, target)
        probe = redis.Redis.from_url(target.url)
        stack.callback(probe.close)
        with Sampler(
            {**{w.name: w.pid for w in workers}, **support},
            inflight=(lambda: count_inflight(probe)) if target.embedded else None,
        ) as sampler:
            enqueue_s, outcomes = cancel_all(deployment, targets, workers, options, console)
            usage = sampler.stop()
        stats = sim.stats()
    return build_report(
        options,
        redis_kind="embedded" if target.embedded else "external",
        enqueue_s=enqueue_s,
        outcomes=outcomes,
        usage=usage,
        peak_inflight=sampler.peak_inflight,
        machine_busy_s=sampler.machine_busy_s,
        load_1m=load_1m,
        stats=stats,
        machine=machine,
    )


def count_inflight(client: redis.Redis) -> int:
    """Jobs a worker has started and not finished: their progress hash exists until publish."""
    return sum(1 for _ in client.scan_iter(match=keys.job_state("*"), count=1000))


def cancel_all(
    deployment: WorkerEnv,
    targets: list[tuple[str, str]],
    workers: list[Child],
    options: Options,
    console: Console,
) -> tuple[float, list[Outcome]]:
    """Queue a cancel for every target at once; the time that took, and the outcomes."""
    from workers.producer import Producer  # imports Celery: only once workers are up

    producer = Producer(deployment.producer_settings())
    try:
        after_id = stream_tail(producer.redis)
        started = time.monotonic()
        submitted = [
            producer.cancel(thread_id, run_id, reason="bench") for thread_id, run_id in targets
        ]
        enqueue_s = time.monotonic() - started
        if any(s.duplicate for s in submitted):
            raise StartFailed("a run already had a cancel in flight: is the Redis shared?")
        console.print(f"queued {len(submitted)} cancels in {enqueue_s:.2f} s")
        pending = {s.job_id for s in submitted}
        outcomes = follow(producer.redis, after_id, pending, workers, options.follow_timeout_s)
    finally:
        producer.close()
    return enqueue_s, outcomes


def follow(
    client: redis.Redis, after_id: str, pending: set[str], workers: list[Child], timeout_s: float
) -> list[Outcome]:
    """Read the outcome stream until no job is pending, a worker dies, or `timeout_s`."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        after_id, batch = read_batch(client, after_id, block_ms=200)
        for outcome in batch:
            if outcome.job_id in pending:
                pending.discard(outcome.job_id)
                outcomes.append(outcome)
    return outcomes


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def build_report(
    options: Options,
    *,
    redis_kind: str,
    enqueue_s: float,
    outcomes: list[Outcome],
    usage: list[Usage],
    peak_inflight: int | None,
    machine_busy_s: float,
    load_1m: float,
    stats: dict[str, Any],
    machine: Machine,
) -> Report:
    durations = sorted(o.duration_s for o in outcomes)
    wall_s = _wall_s(outcomes)
    requests_total = int(stats["requests_total"])
    workers = set(worker_names(options.workers))
    return Report(
        runs=options.runs,
        workers=options.workers,
        concurrency=options.concurrency,
        latency_ms=options.latency_ms,
        settle_min_s=options.settle_min_s,
        settle_max_s=options.settle_max_s,
        redis=redis_kind,
        outcomes=len(outcomes),
        enqueue_s=round(enqueue_s, 3),
        wall_s=round(wall_s, 3),
        runs_per_s=round(len(outcomes) / wall_s, 1) if wall_s > 0 else 0.0,
        time_to_outcome_s=Percentiles(
            p50=percentile(durations, 0.50),
            p90=percentile(durations, 0.90),
            p99=percentile(durations, 0.99),
            max=durations[-1],
        )
        if durations
        else None,
        results=dict(Counter(o.result.value for o in outcomes).most_common()),
        peak_inflight=peak_inflight,
        worker_usage=[u for u in usage if u.name in workers],
        support_usage=[u for u in usage if u.name not in workers],
        machine_busy_cpu_s=machine_busy_s,
        other_cpu_s=round(max(0.0, machine_busy_s - sum(u.cpu_s for u in usage)), 2),
        load_1m_at_start=round(load_1m, 2),
        sim_requests_total=requests_total,
        sim_requests_by_route={str(k): int(v) for k, v in stats["by_route"].items()},
        requests_per_run=round(requests_total / options.runs, 2),
        machine=machine,
    )


def _wall_s(outcomes: list[Outcome]) -> float:
    if not outcomes:
        return 0.0
    first: datetime = min(o.requested_at for o in outcomes)
    last: datetime = max(o.finished_at for o in outcomes)
    return (last - first).total_seconds()


def render(report: Report) -> Table:
    """The report as a two-column table."""
    table = Table(title="cancel throughput", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    ttl = report.time_to_outcome_s
    setup = f"{report.runs} / {report.workers} x {report.concurrency}"
    sim = f"{report.latency_ms:g} ms, {report.settle_min_s:g}-{report.settle_max_s:g} s"
    results = ", ".join(f"{k} {v}" for k, v in report.results.items()) or "-"
    spread = "-"
    if ttl is not None:
        spread = f"{ttl.p50:.2f} / {ttl.p90:.2f} / {ttl.p99:.2f} / {ttl.max:.2f} s"
    inflight = "-" if report.peak_inflight is None else str(report.peak_inflight)
    requests = f"{report.sim_requests_total} ({report.requests_per_run:.2f})"
    rows: list[tuple[str, str]] = [
        ("runs / workers x concurrency", setup),
        ("simulator latency, cancel settle", sim),
        ("redis", report.redis),
        ("outcomes", f"{report.outcomes} of {report.runs}"),
        ("results", results),
        ("enqueue time", f"{report.enqueue_s:.2f} s"),
        ("wall time (first request -> last outcome)", f"{report.wall_s:.2f} s"),
        ("runs confirmed per second", f"{report.runs_per_s:.1f}"),
        ("time to outcome p50 / p90 / p99 / max", spread),
        ("peak jobs in flight (sampled)", inflight),
        ("simulator requests (per run)", requests),
    ]
    for usage in [*report.worker_usage, *report.support_usage]:
        rows.append(
            (f"{usage.name}: peak RSS, CPU", f"{usage.peak_rss_mib:.0f} MiB, {usage.cpu_s:.1f} s")
        )
    m = report.machine
    rows += [
        (
            "CPU busy, all processes (not ours)",
            f"{report.machine_busy_cpu_s:.1f} s ({report.other_cpu_s:.1f} s)",
        ),
        ("load average (1 min) at start", f"{report.load_1m_at_start:.2f}"),
        ("machine", f"{m.cpu_model}, {m.cores} cores, {m.ram_gib:g} GiB"),
        ("platform", f"{m.platform}, Python {m.python}"),
        ("date (UTC)", m.date_utc),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    console = Console(stderr=True)
    try:
        report = run(options, console)
    except KeyboardInterrupt:
        console.print("interrupted; everything started was stopped")
        return EXIT_INTERRUPTED
    if options.json_output:
        print(report.model_dump_json())
    else:
        Console().print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

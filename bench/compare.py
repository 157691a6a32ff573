"""Our workers against the two peers, both scenarios of issue 3: `python -m bench.compare`.

One go, on this machine. For each scenario: a private Redis (or `--redis-url`), the
simulator in its own process, then one contender after another, each on freshly seeded runs
with the simulator's counters reset (`POST /_sim/reset`) before it:

- ours: `--workers` real worker processes (default concurrency, our global limit set by
  `RUNCTL_RATE_LIMIT_RPS`), one bulk job over all runs through `Producer.bulk_cancel`,
  followed until the bulk record says `finished`; the workers are stopped before the peers;
- `async_sdk`: `AsyncOpenAI` behind a semaphore of 256, every run (in this process);
- `sequential_sdk`: `OpenAI`, one run after another over a sample, extrapolated.

Scenarios: `throughput` (5,000 runs, no limit anywhere) and `rate-limited` (2,000 runs, the
simulator admits 100 requests/s and answers 429 with `retry-after` beyond; our limit is set
to the same 100/s, as an operator sets it to the provider's published limit).

Prints one table per scenario and whether each target of the issue was met, or with `--json`
one JSON object; `--out FILE` writes that object too. Everything it started is stopped on
success, failure or Ctrl-C. Exit code 0 when every target was met, 1 when one was missed,
2 when a part failed to start or died.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

from bench import peers
from bench.cancel_throughput import Percentiles, percentile
from bench.machine import Machine, describe_machine
from bench.processes import (
    Child,
    RedisTarget,
    SimulatorKnobs,
    SimulatorProcess,
    StartFailed,
    open_stage,
    start_workers,
    support_pids,
)
from bench.sampling import Sampler, Usage
from orchestrator.core.models import Outcome, Result
from orchestrator.service.targets import Problem, Target
from orchestrator.store.bulk import BulkRecord

THROUGHPUT = "throughput"
RATE_LIMITED = "rate-limited"
DEFAULT_CONCURRENCY = 1000  # the worker's own default (RUNCTL_WORKER_CONCURRENCY)
FOLLOW_TIMEOUT_S = 600.0
FOLLOW_POLL_S = 0.1
# No new outcome for this long ends the wait for ours: the jobs left are counted lost. A
# job's message comes back only after the visibility timeout, which outlasts any deadline.
STALL_TIMEOUT_S = 60.0
REQUESTS_PER_RUN_FLOOR = 2  # one cancel, one poll
FLOOR_FACTOR_TARGET = 1.2
THROUGHPUT_FACTOR_TARGET = 1.5  # issue 11: ours over the async SDK peer, same run
RATE_LIMITED_SHARE_TARGET = 0.01
TOP_OTHER_PROCESSES = 5
WIDE_COLUMNS = 150
LOG_MARKS = (" ERROR ", " CRITICAL ", "Connection to broker lost")
EXIT_MISSED = 1
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130


class Scenario(BaseModel):
    """One of the issue's two scenarios: the runs, the provider's limit, ours."""

    model_config = ConfigDict(frozen=True)

    name: str
    runs: int
    sim_rate_limit_rps: float | None  # the provider's limit (429 beyond); None = none
    our_rate_limit_rps: float  # RUNCTL_RATE_LIMIT_RPS for our workers; 0 = off

    @property
    def floor_s(self) -> float | None:
        """The shortest possible wall time under the provider's limit, or None without one."""
        if self.sim_rate_limit_rps is None:
            return None
        return REQUESTS_PER_RUN_FLOOR * self.runs / self.sim_rate_limit_rps


SCENARIOS: dict[str, Scenario] = {
    THROUGHPUT: Scenario(
        name=THROUGHPUT, runs=5000, sim_rate_limit_rps=None, our_rate_limit_rps=0.0
    ),
    RATE_LIMITED: Scenario(
        name=RATE_LIMITED, runs=2000, sim_rate_limit_rps=100.0, our_rate_limit_rps=100.0
    ),
}


class Options(SimulatorKnobs):
    scenario: str = "both"
    runs: int | None = None  # overrides each scenario's count (for a quick try only)
    workers: int = 2
    concurrency: int = DEFAULT_CONCURRENCY
    poll_after_ms: int | None = None  # the simulator's `openai-poll-after-ms` hint; None: none
    sample: int = peers.DEFAULT_SAMPLE
    peer_concurrency: int = peers.DEFAULT_CONCURRENCY
    redis_url: str | None = None
    follow_timeout_s: float = FOLLOW_TIMEOUT_S
    stall_timeout_s: float = STALL_TIMEOUT_S
    keep_logs: bool = False
    json_output: bool = False
    out: Path | None = None

    def scenarios(self) -> list[Scenario]:
        chosen = list(SCENARIOS.values()) if self.scenario == "both" else [SCENARIOS[self.scenario]]
        if self.runs is None:
            return chosen
        return [s.model_copy(update={"runs": self.runs}) for s in chosen]


# --- what is reported ------------------------------------------------------------------------


class OursRun(BaseModel):
    """Our workers over one bulk job. Times to outcome count from the bulk's `created_at`."""

    model_config = ConfigDict(frozen=True)

    workers: int
    concurrency: int
    rate_limit_rps: float  # RUNCTL_RATE_LIMIT_RPS; 0 = off
    bulk_id: str
    finished: bool  # the bulk record said `finished` before the follow or stall timeout
    queued: int
    outcomes: int
    lost: int  # seeded runs with no outcome at the end
    results: dict[str, int]
    problems: int  # targets the bulk refused (none expected)
    enqueue_s: float  # bulk_cancel: create, stream all targets in, return
    wall_s: float  # bulk created -> last outcome finished
    runs_per_s: float  # runs confirmed (cancelled or already terminal) per second of wall_s
    since_bulk_start_s: Percentiles | None  # outcome.finished_at - bulk created_at
    duration_s: Percentiles | None  # outcome.duration_s (requested_at -> finished_at)
    worker_usage: list[Usage]
    support_usage: list[Usage]  # the simulator, an embedded Redis, this process
    worker_log: dict[str, int]  # ERROR / CRITICAL lines, and broker connections lost
    simulator: peers.SimulatorTraffic
    machine_busy_cpu_s: float
    other_cpu_s: float  # machine busy CPU not spent by any process above
    load_1m_at_start: float

    @property
    def errors(self) -> int:
        return self.results.get(Result.ERROR.value, 0)

    @property
    def confirmed(self) -> int:
        return sum(
            self.results.get(r.value, 0) for r in (Result.CANCELLED, Result.ALREADY_TERMINAL)
        )


class Check(BaseModel):
    """One target of the issue: what it asks, what was measured, and whether it was met."""

    model_config = ConfigDict(frozen=True)

    target: str
    measured: str
    met: bool


class ScenarioRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    floor_s: float | None
    latency_ms: float
    settle_min_s: float
    settle_max_s: float
    ours: OursRun
    async_sdk: peers.PeerRun
    sequential_sdk: peers.PeerRun
    checks: list[Check]


class OtherProcess(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    name: str
    cpu_s: float


class Comparison(BaseModel):
    """Everything one command measured, with the machine and what else ran on it."""

    model_config = ConfigDict(frozen=True)

    command: str
    machine: Machine
    started_utc: str
    finished_utc: str
    load_avg_at_start: tuple[float, float, float]
    machine_busy_cpu_s: float  # every process, the whole command
    other_processes: list[OtherProcess]  # the busiest processes not ours, the whole command
    scenarios: list[ScenarioRun]

    @property
    def all_met(self) -> bool:
        return all(check.met for s in self.scenarios for check in s.checks)


# --- the command -----------------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    add = parser.add_argument
    add("--scenario", choices=(THROUGHPUT, RATE_LIMITED, "both"), default="both")
    add("--runs", type=int, default=None, help="override each scenario's runs (a quick try)")
    add("--workers", type=int, default=2, help="our worker processes")
    add("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="jobs per worker at once")
    add("--latency-ms", type=float, default=20.0, help="simulator latency on every answer")
    add("--settle-min-s", type=float, default=0.3, help="cancelling -> cancelled, at least")
    add("--settle-max-s", type=float, default=1.5, help="cancelling -> cancelled, at most")
    add("--poll-after-ms", type=int, default=None,
        help="the simulator sends this openai-poll-after-ms hint (issue 11: 250)")  # fmt: skip
    add("--sample", type=int, default=peers.DEFAULT_SAMPLE, help="runs the sequential peer times")
    add("--peer-concurrency", type=int, default=peers.DEFAULT_CONCURRENCY,
        help="the async peer's semaphore")  # fmt: skip
    add("--redis-url", default=None, help="use this Redis (default: a private embedded one)")
    add("--follow-timeout-s", type=float, default=FOLLOW_TIMEOUT_S, help="give up on ours after")
    add("--stall-timeout-s", type=float, default=STALL_TIMEOUT_S,
        help="give up on ours after this long without a new outcome")  # fmt: skip
    add("--keep-logs", action="store_true", help="keep the working directory and its logs")
    add("--json", dest="json_output", action="store_true", help="print one JSON object")
    add("--out", type=Path, default=None, help="also write the JSON object to this file")
    return Options(**vars(parser.parse_args(argv)))


def run(options: Options, console: Console, *, command: str) -> Comparison:
    """Every chosen scenario, each contender on fresh runs; stops everything it started."""
    machine = describe_machine()
    load = os.getloadavg()
    before = cpu_by_process()
    busy_at_start_s = machine_busy_s()
    scenarios = [run_scenario(s, options, console) for s in options.scenarios()]
    return Comparison(
        command=command,
        machine=machine,
        started_utc=machine.date_utc,
        finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        load_avg_at_start=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
        machine_busy_cpu_s=round(machine_busy_s() - busy_at_start_s, 1),
        other_processes=busiest_since(before),
        scenarios=scenarios,
    )


def run_scenario(scenario: Scenario, options: Options, console: Console) -> ScenarioRun:
    """A Redis and a simulator for this scenario, then ours, the async peer, the sequential."""
    with ExitStack() as stack:
        workdir, target, sim = open_stage(
            stack,
            prefix=f"runctl-compare-{scenario.name}-",
            redis_url=options.redis_url,
            keep_logs=options.keep_logs,
            config=options.simulator_config(rate_limit_rps=scenario.sim_rate_limit_rps).model_copy(
                update={"poll_after_ms": options.poll_after_ms}
            ),
        )
        console.print(
            f"[bold]{scenario.name}[/]: {scenario.runs} runs; simulator pid {sim.pid}, "
            f"redis {'embedded' if target.embedded else 'external'}, logs in {workdir}"
        )
        ours = measure_ours(scenario, options, sim, target, workdir, console)
        peer_options = peers.Options(
            runs=scenario.runs,
            latency_ms=options.latency_ms,
            settle_min_s=options.settle_min_s,
            settle_max_s=options.settle_max_s,
            rate_limit_rps=scenario.sim_rate_limit_rps,
            sample=options.sample,
            concurrency=options.peer_concurrency,
        )
        async_run = peers.measure(_runner(peer_options, "async"), sim, peer_options, console)
        console.print(f"async_sdk: {async_run.report.wall_s:.1f} s, {async_run.report.endings}")
        sequential_run = peers.measure(
            _runner(peer_options, "sequential"), sim, peer_options, console
        )
        console.print(
            f"sequential_sdk: {sequential_run.report.wall_s:.1f} s for "
            f"{sequential_run.report.runs_measured} runs, {sequential_run.report.endings}"
        )
    return ScenarioRun(
        scenario=scenario,
        floor_s=scenario.floor_s,
        latency_ms=options.latency_ms,
        settle_min_s=options.settle_min_s,
        settle_max_s=options.settle_max_s,
        ours=ours,
        async_sdk=async_run,
        sequential_sdk=sequential_run,
        checks=checks_for(scenario, ours, async_run),
    )


def _runner(options: peers.Options, which: str) -> peers.Runner:
    return peers.peer_runners(options.model_copy(update={"peer": which}))[0]


def measure_ours(
    scenario: Scenario,
    options: Options,
    sim: SimulatorProcess,
    target: RedisTarget,
    workdir: Path,
    console: Console,
) -> OursRun:
    """Start our workers, cancel every freshly seeded run in one bulk job, stop the workers."""
    from workers.producer import Producer  # imports Celery: only once workers are wanted

    with ExitStack() as stack:
        deployment, workers = start_workers(
            stack,
            target,
            sim,
            queue_prefix="runctl-compare",
            count=options.workers,
            concurrency=options.concurrency,
            log_dir=workdir,
            rate_limit_rps=scenario.our_rate_limit_rps,
        )
        sim.reset()
        seeded = sim.seed(scenario.runs, status="in_progress")
        load_1m = os.getloadavg()[0]
        console.print(
            f"ours: workers {[w.pid for w in workers]} up; seeded {len(seeded)} runs; "
            f"load average {load_1m:.2f}"
        )
        producer = Producer(deployment.producer_settings())
        stack.callback(producer.close)
        support = support_pids(sim, target)
        problems: list[Problem] = []
        with Sampler({**{w.name: w.pid for w in workers}, **support}) as sampler:
            started = time.monotonic()
            bulk_id = producer.bulk_cancel(
                (Target(thread_id, run_id) for thread_id, run_id in seeded),
                on_problem=problems.append,
                reason="bench",
                source="bench.compare",
            )
            enqueue_s = time.monotonic() - started
            console.print(f"ours: bulk {bulk_id} queued in {enqueue_s:.2f} s; following it")
            finished = follow_bulk(
                lambda: producer.bulks.get(bulk_id),
                workers,
                timeout_s=options.follow_timeout_s,
                stall_s=options.stall_timeout_s,
            )
            usage = sampler.stop()
        record = producer.bulks.get(bulk_id)
        if record is None:
            raise StartFailed(f"the bulk record {bulk_id} is gone")
        outcomes = list(producer.bulks.outcomes(bulk_id))
        sim.check_alive()
        stats = sim.stats()
    worker_names = {w.name for w in workers}
    sim_usage = next(u for u in usage if u.name == "simulator")
    ours = OursRun(
        workers=options.workers,
        concurrency=options.concurrency,
        rate_limit_rps=scenario.our_rate_limit_rps,
        bulk_id=bulk_id,
        finished=finished,
        queued=record.queued,
        outcomes=len(outcomes),
        lost=scenario.runs - len({o.run_id for o in outcomes}),
        results=dict(Counter(o.result.value for o in outcomes).most_common()),
        problems=len(problems),
        enqueue_s=round(enqueue_s, 3),
        wall_s=round(_wall_s(record.created_at, outcomes), 3),
        runs_per_s=_confirmed_per_s(record.created_at, outcomes),
        since_bulk_start_s=spread(
            [(o.finished_at - record.created_at).total_seconds() for o in outcomes]
        ),
        duration_s=spread([o.duration_s for o in outcomes]),
        worker_usage=[u for u in usage if u.name in worker_names],
        support_usage=[u for u in usage if u.name not in worker_names],
        worker_log=log_problems(workers),
        simulator=peers.traffic_of(stats, scenario.runs, sim_usage),
        machine_busy_cpu_s=sampler.machine_busy_s,
        other_cpu_s=round(max(0.0, sampler.machine_busy_s - sum(u.cpu_s for u in usage)), 2),
        load_1m_at_start=round(load_1m, 2),
    )
    console.print(
        f"ours: {ours.wall_s:.1f} s, {ours.runs_per_s:.1f} runs/s, {ours.results}, lost {ours.lost}"
    )
    return ours


def follow_bulk(
    progress: Callable[[], BulkRecord | None],
    workers: list[Child],
    *,
    timeout_s: float,
    stall_s: float,
) -> bool:
    """Poll the bulk record until it is finished (True), or until `timeout_s` in all or
    `stall_s` without a new outcome (False). Raises StartFailed if a worker dies."""
    started = time.monotonic()
    last_done, last_change = -1, started
    while True:
        record = progress()
        now = time.monotonic()
        if record is not None and record.finished:
            return True
        done = -1 if record is None else record.done
        if done != last_done:
            last_done, last_change = done, now
        for worker in workers:
            worker.check_alive()
        if now - started > timeout_s or now - last_change > stall_s:
            return False
        time.sleep(FOLLOW_POLL_S)


def log_problems(workers: Sequence[Child]) -> dict[str, int]:
    """What went wrong in the workers' logs: lines by level, and broker connections lost."""
    found: Counter[str] = Counter()
    for worker in workers:
        try:
            text = worker.log_path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            for mark in LOG_MARKS:
                if mark in line:
                    found[mark.strip()] += 1
    return dict(found.most_common())


def _wall_s(start: datetime, outcomes: Sequence[Outcome]) -> float:
    if not outcomes:
        return 0.0
    return (max(o.finished_at for o in outcomes) - start).total_seconds()


def _confirmed_per_s(start: datetime, outcomes: Sequence[Outcome]) -> float:
    wall_s = _wall_s(start, outcomes)
    confirmed = sum(1 for o in outcomes if o.result in (Result.CANCELLED, Result.ALREADY_TERMINAL))
    return round(confirmed / wall_s, 1) if wall_s > 0 else 0.0


def spread(values: Sequence[float]) -> Percentiles | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Percentiles(
        p50=round(percentile(ordered, 0.50), 3),
        p90=round(percentile(ordered, 0.90), 3),
        p99=round(percentile(ordered, 0.99), 3),
        max=round(ordered[-1], 3),
    )


# --- the targets of the issue ----------------------------------------------------------------


def checks_for(scenario: Scenario, ours: OursRun, async_run: peers.PeerRun) -> list[Check]:
    complete = Check(
        target="every run has an outcome (the bulk job finished)",
        measured=f"{ours.outcomes} of {scenario.runs}, lost {ours.lost}",
        met=ours.finished and ours.lost == 0,
    )
    if scenario.floor_s is None:
        theirs = async_run.report.runs_per_s
        return [
            Check(
                target=f"ours >= {THROUGHPUT_FACTOR_TARGET:g} x the async SDK's runs confirmed/s",
                measured=f"{ours.runs_per_s:.1f} vs {theirs:.1f} runs/s "
                f"({ours.runs_per_s / max(theirs, 1e-9):.2f} x)",
                met=ours.runs_per_s >= THROUGHPUT_FACTOR_TARGET * theirs,
            ),
            complete,
        ]
    limit_s = FLOOR_FACTOR_TARGET * scenario.floor_s
    share = ours.simulator.rate_limited_share
    return [
        Check(
            target=f"wall <= {FLOOR_FACTOR_TARGET:g} x the {scenario.floor_s:g} s floor",
            measured=f"{ours.wall_s:.1f} s ({ours.wall_s / scenario.floor_s:.2f} x)",
            met=ours.finished and ours.wall_s <= limit_s,
        ),
        Check(
            target="zero runs lost or ended `error`",
            measured=f"lost {ours.lost}, error {ours.errors}",
            met=ours.lost == 0 and ours.errors == 0,
        ),
        Check(
            target=f"429s < {RATE_LIMITED_SHARE_TARGET:.0%} of requests",
            measured=f"{ours.simulator.rate_limited} of {ours.simulator.requests_total} "
            f"({share:.2%})",
            met=share < RATE_LIMITED_SHARE_TARGET,
        ),
    ]


# --- the machine: what else ran --------------------------------------------------------------


def machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """Every process's (name, CPU seconds so far), by pid."""
    found: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info.get("cpu_times")
        if times is not None:
            found[process.pid] = (str(process.info.get("name")), times.user + times.system)
    return found


def busiest_since(before: dict[int, tuple[str, float]]) -> list[OtherProcess]:
    """The processes (not this one) that used the most CPU since `before` was taken. The
    benchmark's own children are gone by now, and did not exist then: they never count."""
    after = cpu_by_process()
    used = [
        OtherProcess(pid=pid, name=name, cpu_s=round(cpu_s - before[pid][1], 1))
        for pid, (name, cpu_s) in after.items()
        if pid in before and pid != os.getpid() and before[pid][0] == name
    ]
    used.sort(key=lambda p: p.cpu_s, reverse=True)
    return [p for p in used[:TOP_OTHER_PROCESSES] if p.cpu_s > 0]


# --- rendering -------------------------------------------------------------------------------


def _pcts(p: Percentiles | None) -> str:
    return "-" if p is None else f"{p.p50:.2f} / {p.p99:.2f} s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _cpu(usages: Sequence[Usage]) -> str:
    return " + ".join(f"{u.cpu_s:.1f}" for u in usages) + " s"


def _rss(usages: Sequence[Usage]) -> str:
    return " + ".join(f"{u.peak_rss_mib:.0f}" for u in usages) + " MiB"


def _traffic(s: peers.SimulatorTraffic) -> tuple[str, str, str]:
    return (
        f"{s.requests_total} ({s.requests_per_run:.2f})",
        f"{s.rate_limited} ({s.rate_limited_share:.2%})",
        f"{s.max_rps_1s:g}",
    )


def ours_column(ours: OursRun, floor_s: float | None) -> list[str]:
    requests, limited, peak = _traffic(ours.simulator)
    support = {u.name: u for u in ours.support_usage}
    wall = f"{ours.wall_s:.1f} s" + ("" if ours.finished else " (unfinished)")
    return [
        f"{ours.outcomes} / {ours.queued}",
        wall,
        "-" if floor_s is None else f"{ours.wall_s / floor_s:.2f} x",
        f"{ours.runs_per_s:.1f}",
        _pcts(ours.since_bulk_start_s),
        _pcts(ours.duration_s),
        _counts(ours.results),
        f"{ours.lost} / {ours.errors}",
        requests,
        limited,
        peak,
        _rss(ours.worker_usage),
        _cpu(ours.worker_usage) + f" (bench {support['bench'].cpu_s:.1f} s)",
        f"{support['simulator'].cpu_s:.1f} s",
        f"{ours.other_cpu_s:.1f} s (load {ours.load_1m_at_start:.2f})",
        _counts(ours.worker_log),
    ]


def peer_column(item: peers.PeerRun, floor_s: float | None) -> list[str]:
    r = item.report
    requests, limited, peak = _traffic(item.simulator)
    sampled = r.runs_measured < r.runs_total
    wall = f"{r.wall_s:.1f} s" + (f" (all: {r.extrapolated_wall_s:.0f} s)" if sampled else "")
    wall_for_floor = r.extrapolated_wall_s if sampled else r.wall_s
    errors = sum(v for k, v in r.endings.items() if k == peers.Ending.LOST.value)
    return [
        f"{r.runs_measured} / {r.runs_total}",
        wall,
        "-" if floor_s is None else f"{wall_for_floor / floor_s:.2f} x",
        f"{r.extrapolated_runs_per_s if sampled else r.runs_per_s:.1f}",
        _pcts(r.time_to_outcome_s),
        _pcts(r.run_s),
        _counts(r.endings),
        f"{errors} / -",
        requests,
        limited,
        peak,
        f"{r.usage.peak_rss_mib:.0f} MiB",
        f"{r.usage.cpu_s:.1f} s",
        f"{item.simulator.usage.cpu_s:.1f} s",
        f"{item.other_cpu_s:.1f} s (load {item.load_1m_at_start:.2f})",
        "-",
    ]


ROWS = [
    "runs measured (outcomes / queued for ours)",
    "wall time",
    "wall / floor",
    "runs confirmed per second",
    "time to outcome p50 / p99 (from start)",
    "per-run time p50 / p99 (duration_s)",
    "endings",
    "lost / error",
    "requests (per run)",
    "429s (share)",
    "peak requests in 1 s",
    "peak RSS (per worker)",
    "CPU (per process)",
    "simulator CPU",
    "other CPU (load 1 min at start)",
    "worker log: errors, broker connection lost",
]


def render(item: ScenarioRun) -> Table:
    s = item.scenario
    limit = f"{s.sim_rate_limit_rps:g}/s" if s.sim_rate_limit_rps else "none"
    floor = "" if item.floor_s is None else f", floor {item.floor_s:g} s"
    table = Table(
        title=f"{s.name}: {s.runs} runs, latency {item.latency_ms:g} ms, settle "
        f"{item.settle_min_s:g}-{item.settle_max_s:g} s, provider limit {limit}{floor}"
    )
    table.add_column("figure")
    table.add_column(
        f"ours ({item.ours.workers} workers, limit {item.ours.rate_limit_rps:g})", justify="right"
    )
    table.add_column(f"async_sdk ({item.async_sdk.report.concurrency})", justify="right")
    table.add_column("sequential_sdk (sample)", justify="right")
    columns = [
        ours_column(item.ours, item.floor_s),
        peer_column(item.async_sdk, item.floor_s),
        peer_column(item.sequential_sdk, item.floor_s),
    ]
    for index, name in enumerate(ROWS):
        table.add_row(name, *(column[index] for column in columns))
    table.caption = "\n".join(
        f"{'met' if c.met else 'MISSED'}: {c.target}: {c.measured}" for c in item.checks
    )
    return table


def render_context(report: Comparison) -> str:
    m = report.machine
    others = ", ".join(f"{p.name} ({p.pid}) {p.cpu_s:g} s" for p in report.other_processes)
    load = " / ".join(f"{v:.2f}" for v in report.load_avg_at_start)
    return (
        f"{m.cpu_model}, {m.cores} cores, {m.ram_gib:g} GiB; {m.platform}, Python {m.python}\n"
        f"{report.started_utc} -> {report.finished_utc}; load average at start {load}; "
        f"machine busy {report.machine_busy_cpu_s:g} CPU s\n"
        f"busiest other processes: {others or '-'}\n"
        f"command: {report.command}"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    # A background job ignores Ctrl-C; a TERM must still stop everything that was started.
    signal.signal(signal.SIGTERM, _interrupt)
    console = Console(stderr=True)
    command = shlex.join(
        ["python", "-m", "bench.compare", *(sys.argv[1:] if argv is None else argv)]
    )
    try:
        report = run(options, console, command=command)
    except KeyboardInterrupt:
        console.print("interrupted; everything started was stopped")
        return EXIT_INTERRUPTED
    except StartFailed as error:
        console.print(f"[red]failed[/]: {error}")
        return EXIT_FAILED
    payload = report.model_dump_json(exclude=_WITHOUT_PER_RUN)
    if options.out is not None:
        options.out.write_text(payload + "\n")
    if options.json_output:
        print(payload)
    else:
        # A pipe gets rich's 80 columns, too narrow for four columns of figures.
        out = Console() if sys.stdout.isatty() else Console(width=WIDE_COLUMNS)
        for item in report.scenarios:
            out.print(render(item))
        out.print(render_context(report))
    return 0 if report.all_met else EXIT_MISSED


_WITHOUT_PER_RUN: Any = {
    "scenarios": {
        "__all__": {
            "async_sdk": {"report": {"outcomes"}},
            "sequential_sdk": {"report": {"outcomes"}},
        }
    }
}


if __name__ == "__main__":
    sys.exit(main())

"""The two peers a user would reach for instead of our workers: `python -m bench.peers`.

Both use the official `openai` SDK with its defaults (2 retries, its own backoff and
`retry-after` handling, `runs.poll` at its default interval, its default connection limits),
and both act as a careful user would: a "Cannot cancel run with status 'cancelling'" refusal
means poll, one naming a terminal status means the run is done, and `requires_action` is
polled through. Any exception that escapes the SDK marks that run `lost`; it never stops
the runner.

- `sequential_sdk`: `OpenAI`, one run after another (cancel, then `runs.poll`), over the
  first `sample` runs only; the wall time for all runs is extrapolated from the sample.
- `async_sdk`: `AsyncOpenAI`, every run at once behind an `asyncio.Semaphore(concurrency)`.

Both are importable and run in the calling process; each measures that process's peak RSS
and CPU time while it runs. The command starts its own simulator process, seeds fresh
`in_progress` runs for each peer, runs the chosen peers and prints a table, or with
`--json` one JSON object per peer line, each with the simulator's counters for that peer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, OpenAI
from openai._constants import DEFAULT_CONNECTION_LIMITS
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from bench.cancel_throughput import Percentiles, percentile
from bench.machine import Machine, describe_machine
from bench.processes import SimulatorKnobs, SimulatorProcess, start_simulator
from bench.sampling import Sampler, Usage
from orchestrator.providers.base import TERMINAL, RunStatus

SEQUENTIAL = "sequential_sdk"
ASYNC = "async_sdk"
DEFAULT_SAMPLE = 100
DEFAULT_CONCURRENCY = 256
SDK_POLL_INTERVAL_S = 1.0  # what `runs.poll` waits when no `openai-poll-after-ms` header
SDK_LOGGER = "openai._base_client"
SDK_RETRY_LOG_PREFIX = "Retrying request in"
DEPRECATION_MESSAGE = "The Assistants API is deprecated"
REFUSAL = re.compile(r"Cannot cancel run with status '([a-z_]+)'")
CLIENT_ERRORS = range(400, 500)

Target = tuple[str, str]  # (thread_id, run_id)


class Ending(StrEnum):
    """How one run ended, as the peer saw it."""

    CANCELLED = "cancelled"  # confirmed `cancelled`
    ALREADY_TERMINAL = "already_terminal"  # another terminal status (refused, or raced)
    LOST = "lost"  # an exception escaped the SDK: the caller does not know how it ended


class RunOutcome(BaseModel):
    """One run: how it ended and when, counted from the runner's start and from its own."""

    model_config = ConfigDict(frozen=True)

    thread_id: str
    run_id: str
    ending: Ending
    status: str | None  # the last status seen; None when lost
    error: str | None  # the class of the exception that escaped, when lost
    time_to_outcome_s: float  # runner start -> this run confirmed (or given up)
    run_s: float  # this run's first request -> confirmed (or given up)


class SdkSetup(BaseModel):
    """The SDK defaults a peer ran with: what a user gets without configuring anything."""

    model_config = ConfigDict(frozen=True)

    openai_version: str
    transport: str  # the HTTP stack under the SDK, with versions
    max_retries: int
    read_timeout_s: float | None
    connect_timeout_s: float | None
    max_connections: int | None
    max_keepalive_connections: int | None
    poll_interval_s: float  # `runs.poll`'s default, unless the server sends a header


class SdkRetries(BaseModel):
    """The SDK's own retries (invisible to its caller), read from its INFO log line."""

    model_config = ConfigDict(frozen=True)

    count: int
    wait_total_s: float
    wait_min_s: float | None
    wait_max_s: float | None


class PeerReport(BaseModel):
    """One peer's measurement. With a sample smaller than the runs, the measured figures
    cover the sample and `extrapolated_*` scale its wall time to all runs."""

    model_config = ConfigDict(frozen=True)

    peer: str
    runs_total: int
    runs_measured: int
    concurrency: int
    wall_s: float  # runner start -> last measured run confirmed
    runs_per_s: float  # runs confirmed (not lost) per second of wall_s
    extrapolated_wall_s: float  # wall_s * runs_total / runs_measured
    extrapolated_runs_per_s: float  # confirmed share of runs_total per extrapolated second
    endings: dict[str, int]
    exceptions: dict[str, int]  # every exception an SDK call raised, handled or not
    lost_by_exception: dict[str, int]
    time_to_outcome_s: Percentiles | None
    run_s: Percentiles | None
    sdk_retries: SdkRetries
    usage: Usage  # this process, while the runner ran
    sdk: SdkSetup
    outcomes: list[RunOutcome] = Field(default_factory=list)  # left out of the CLI's JSON


# --- what a careful user does with the SDK's answers ----------------------------------------


def refusal_status(error: openai.APIStatusError) -> RunStatus | None:
    """The status a "Cannot cancel run with status 'X'" 4xx names, when it says what to do
    next: a terminal status (done) or `cancelling` (poll). None for any other error."""
    if error.status_code not in CLIENT_ERRORS:
        return None
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    found = REFUSAL.search(message if isinstance(message, str) else error.message)
    if found is None:
        return None
    status = found.group(1)
    if status == RunStatus.CANCELLING or status in TERMINAL:
        return RunStatus(status)
    return None


def ending_of(status: str) -> Ending:
    """As our workers judge it (`lifecycle.result_for_terminal`), so that the figures compare:
    a run that is `cancelled` counts as cancelled even when the cancel was refused for it."""
    return Ending.CANCELLED if status == RunStatus.CANCELLED else Ending.ALREADY_TERMINAL


class Tally:
    """What the runs of one runner share: its start, and the exceptions seen so far."""

    def __init__(self) -> None:
        self.started_s = time.perf_counter()
        self.exceptions: Counter[str] = Counter()

    def outcome(
        self, target: Target, begun_s: float, status: str | None, error: str | None
    ) -> RunOutcome:
        now_s = time.perf_counter()
        return RunOutcome(
            thread_id=target[0],
            run_id=target[1],
            ending=Ending.LOST if status is None else ending_of(status),
            status=status,
            error=error,
            time_to_outcome_s=round(now_s - self.started_s, 4),
            run_s=round(now_s - begun_s, 4),
        )

    def lost(self, target: Target, begun_s: float, error: Exception) -> RunOutcome:
        name = type(error).__name__
        self.exceptions[name] += 1
        return self.outcome(target, begun_s, None, name)


# --- the sequential peer ---------------------------------------------------------------------


def sequential_sdk(
    base_url: str, api_key: str, runs: Sequence[Target], sample: int = DEFAULT_SAMPLE
) -> PeerReport:
    """Cancel and poll the first `sample` of `runs` (thread_id, run_id) one after another
    with `OpenAI`; the report extrapolates the sample's wall time to all of `runs`."""
    measured = list(runs[:sample])
    client = OpenAI(api_key=api_key, base_url=base_url)
    try:
        with _watching() as watch:
            tally = Tally()
            outcomes = [_cancel_one(client, target, tally) for target in measured]
            wall_s = time.perf_counter() - tally.started_s
        return build_report(
            SEQUENTIAL, len(runs), 1, _setup(client), outcomes, wall_s, tally, watch
        )
    finally:
        client.close()


def _cancel_one(client: OpenAI, target: Target, tally: Tally) -> RunOutcome:
    thread_id, run_id = target
    begun_s = time.perf_counter()
    runs = client.beta.threads.runs
    try:
        try:
            status: str = runs.cancel(run_id=run_id, thread_id=thread_id).status
        except openai.APIStatusError as error:
            refused = refusal_status(error)
            if refused is None:
                raise
            tally.exceptions[type(error).__name__] += 1
            status = refused
        while status not in TERMINAL:
            if status == RunStatus.REQUIRES_ACTION:
                time.sleep(SDK_POLL_INTERVAL_S)  # `poll` would return at once: pace it
            status = runs.poll(run_id=run_id, thread_id=thread_id).status
    except Exception as error:
        return tally.lost(target, begun_s, error)
    return tally.outcome(target, begun_s, status, None)


# --- the concurrent peer ---------------------------------------------------------------------


def async_sdk(
    base_url: str,
    api_key: str,
    runs: Sequence[Target],
    concurrency: int = DEFAULT_CONCURRENCY,
) -> PeerReport:
    """Cancel and poll every one of `runs` with `AsyncOpenAI`, `concurrency` at a time,
    in an event loop of its own (from async code, await `cancel_concurrently`)."""
    return asyncio.run(cancel_concurrently(base_url, api_key, runs, concurrency=concurrency))


async def cancel_concurrently(
    base_url: str,
    api_key: str,
    runs: Sequence[Target],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> PeerReport:
    """`async_sdk` inside the caller's running event loop."""
    client = AsyncOpenAI(api_key=api_key, base_url=base_url)
    try:
        with _watching() as watch:
            tally = Tally()
            gate = asyncio.Semaphore(concurrency)
            outcomes = await asyncio.gather(
                *(_cancel_one_async(client, gate, target, tally) for target in runs)
            )
            wall_s = time.perf_counter() - tally.started_s
        return build_report(
            ASYNC, len(runs), concurrency, _setup(client), outcomes, wall_s, tally, watch
        )
    finally:
        await client.close()


async def _cancel_one_async(
    client: AsyncOpenAI, gate: asyncio.Semaphore, target: Target, tally: Tally
) -> RunOutcome:
    thread_id, run_id = target
    async with gate:
        begun_s = time.perf_counter()
        runs = client.beta.threads.runs
        try:
            try:
                status: str = (await runs.cancel(run_id=run_id, thread_id=thread_id)).status
            except openai.APIStatusError as error:
                refused = refusal_status(error)
                if refused is None:
                    raise
                tally.exceptions[type(error).__name__] += 1
                status = refused
            while status not in TERMINAL:
                if status == RunStatus.REQUIRES_ACTION:
                    await asyncio.sleep(SDK_POLL_INTERVAL_S)
                status = (await runs.poll(run_id=run_id, thread_id=thread_id)).status
        except Exception as error:
            return tally.lost(target, begun_s, error)
        return tally.outcome(target, begun_s, status, None)


# --- measuring -------------------------------------------------------------------------------


class RetryLog(logging.Handler):
    """Collects the waits of the SDK's retries from its "Retrying request in %f seconds"
    INFO line: the only trace its retries leave, since they never reach the caller."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.waits_s: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if str(record.msg).startswith(SDK_RETRY_LOG_PREFIX) and isinstance(args, tuple) and args:
            wait_s = args[0]
            if isinstance(wait_s, int | float):
                self.waits_s.append(float(wait_s))

    def summary(self) -> SdkRetries:
        waits = self.waits_s
        return SdkRetries(
            count=len(waits),
            wait_total_s=round(sum(waits), 3),
            wait_min_s=round(min(waits), 4) if waits else None,
            wait_max_s=round(max(waits), 4) if waits else None,
        )


class Watch:
    """The SDK's retries and this process's usage while a runner runs."""

    def __init__(self) -> None:
        self.retries = RetryLog()
        self.usage: Usage | None = None
        self._sampler = Sampler({"peer": os.getpid()})

    def __enter__(self) -> Watch:
        self._sampler.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.usage = self._sampler.stop()[0]


@contextmanager
def _watching() -> Iterator[Watch]:
    """Silence the SDK's Assistants deprecation warnings, listen to its retry log at INFO,
    and sample this process; everything is put back as it was on the way out."""
    logger = logging.getLogger(SDK_LOGGER)
    level = logger.level
    with warnings.catch_warnings(), Watch() as watch:
        warnings.filterwarnings("ignore", DEPRECATION_MESSAGE, DeprecationWarning)
        logger.addHandler(watch.retries)
        if not logger.isEnabledFor(logging.INFO):
            logger.setLevel(logging.INFO)
        try:
            yield watch
        finally:
            logger.removeHandler(watch.retries)
            logger.setLevel(level)


def _setup(client: OpenAI | AsyncOpenAI) -> SdkSetup:
    timeout = client.timeout
    read_s = connect_s = None
    if isinstance(timeout, httpx2.Timeout):
        read_s, connect_s = timeout.read, timeout.connect
    elif isinstance(timeout, float | int):
        read_s = float(timeout)
    limits = DEFAULT_CONNECTION_LIMITS  # what the SDK gives its own httpx2 client
    return SdkSetup(
        openai_version=metadata.version("openai"),
        transport=", ".join(
            f"{name} {metadata.version(name)}" for name in ("httpx2", "httpcore2", "anyio")
        ),
        max_retries=client.max_retries,
        read_timeout_s=read_s,
        connect_timeout_s=connect_s,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        poll_interval_s=SDK_POLL_INTERVAL_S,
    )


def spread(values: Sequence[float]) -> Percentiles | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return Percentiles(
        p50=percentile(ordered, 0.50),
        p90=percentile(ordered, 0.90),
        p99=percentile(ordered, 0.99),
        max=ordered[-1],
    )


def build_report(
    peer: str,
    runs_total: int,
    concurrency: int,
    sdk: SdkSetup,
    outcomes: Sequence[RunOutcome],
    wall_s: float,
    tally: Tally,
    watch: Watch,
) -> PeerReport:
    measured = len(outcomes)
    confirmed = sum(1 for o in outcomes if o.ending is not Ending.LOST)
    extrapolated_s = wall_s * runs_total / measured if measured else 0.0
    extrapolated_confirmed = confirmed * runs_total / measured if measured else 0.0
    assert watch.usage is not None, "the watch has stopped"
    return PeerReport(
        peer=peer,
        runs_total=runs_total,
        runs_measured=measured,
        concurrency=concurrency,
        wall_s=round(wall_s, 3),
        runs_per_s=round(confirmed / wall_s, 2) if wall_s > 0 else 0.0,
        extrapolated_wall_s=round(extrapolated_s, 1),
        extrapolated_runs_per_s=(
            round(extrapolated_confirmed / extrapolated_s, 2) if extrapolated_s else 0.0
        ),
        endings=dict(Counter(o.ending.value for o in outcomes).most_common()),
        exceptions=dict(tally.exceptions.most_common()),
        lost_by_exception=dict(Counter(o.error for o in outcomes if o.error).most_common()),
        time_to_outcome_s=spread([o.time_to_outcome_s for o in outcomes]),
        run_s=spread([o.run_s for o in outcomes]),
        sdk_retries=watch.retries.summary(),
        usage=watch.usage,
        sdk=sdk,
        outcomes=list(outcomes),
    )


# --- the command -----------------------------------------------------------------------------


Runner = Callable[[str, str, list[Target]], PeerReport]  # base_url, api_key, runs


class Options(SimulatorKnobs):
    runs: int = 1000
    rate_limit_rps: float | None = None
    peer: str = "both"
    sample: int = DEFAULT_SAMPLE
    concurrency: int = DEFAULT_CONCURRENCY
    keep_logs: bool = False
    per_run: bool = False
    json_output: bool = False


class SimulatorTraffic(BaseModel):
    """The simulator's counters for one peer (reset before it) and what it used."""

    model_config = ConfigDict(frozen=True)

    requests_total: int
    requests_per_run: float  # per measured run
    by_route: dict[str, int]
    by_status: dict[str, int]
    rate_limited: int  # 429 answers
    rate_limited_share: float
    max_rps_1s: float
    cancels_received: int
    cancels_applied: int
    runs_by_status: dict[str, int]  # as the simulator ended them, whatever the peer saw
    usage: Usage


class PeerRun(BaseModel):
    """One peer on one freshly seeded simulator: the setup, the report, the context."""

    model_config = ConfigDict(frozen=True)

    latency_ms: float
    settle_min_s: float
    settle_max_s: float
    rate_limit_rps: float | None
    report: PeerReport
    simulator: SimulatorTraffic
    machine_busy_cpu_s: float
    other_cpu_s: float  # machine busy CPU not spent by this process or the simulator
    load_1m_at_start: float
    machine: Machine


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    add = parser.add_argument
    add("--runs", type=int, default=1000, help="stuck runs seeded for each peer")
    add("--latency-ms", type=float, default=20.0, help="simulator latency on every answer")
    add("--settle-min-s", type=float, default=0.3, help="cancelling -> cancelled, at least")
    add("--settle-max-s", type=float, default=1.5, help="cancelling -> cancelled, at most")
    add("--rate-limit-rps", type=float, default=None, help="simulator token bucket (429 beyond)")
    add("--peer", choices=("sequential", "async", "both"), default="both")
    add("--sample", type=int, default=DEFAULT_SAMPLE, help="runs the sequential peer measures")
    add("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="the async peer's limit")
    add("--keep-logs", action="store_true", help="keep the working directory and its logs")
    add("--per-run", action="store_true", help="include every run's outcome in the JSON")
    add("--json", dest="json_output", action="store_true", help="one JSON object per peer")
    return Options(**vars(parser.parse_args(argv)))


def peer_runners(options: Options) -> list[Runner]:
    """The chosen peers, each bound to its options."""

    def sequential(base_url: str, api_key: str, runs: list[Target]) -> PeerReport:
        return sequential_sdk(base_url, api_key, runs, sample=options.sample)

    def concurrent(base_url: str, api_key: str, runs: list[Target]) -> PeerReport:
        return async_sdk(base_url, api_key, runs, concurrency=options.concurrency)

    chosen: dict[str, list[Runner]] = {"sequential": [sequential], "async": [concurrent]}
    return chosen.get(options.peer, [sequential, concurrent])


def run(options: Options, console: Console) -> Iterator[PeerRun]:
    """Start the simulator, then for each chosen peer: reset, seed, measure. Stops the
    simulator however this ends."""
    workdir = Path(tempfile.mkdtemp(prefix="runctl-peers-"))
    with ExitStack() as stack:
        if not options.keep_logs:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        config = options.simulator_config(rate_limit_rps=options.rate_limit_rps)
        sim = start_simulator(stack, config, log_dir=workdir)
        console.print(f"simulator pid {sim.pid} on {sim.base_url}, logs in {workdir}")
        for runner in peer_runners(options):
            yield measure(runner, sim, options, console)


def measure(
    runner: Runner,
    sim: SimulatorProcess,
    options: Options,
    console: Console,
) -> PeerRun:
    """One peer against freshly seeded runs, with the simulator's counters reset first."""
    sim.reset()
    targets = sim.seed(options.runs, status="in_progress")
    load_1m = os.getloadavg()[0]
    console.print(f"seeded {len(targets)} runs; load average {load_1m:.2f}; running a peer")
    with Sampler({"simulator": sim.pid}) as sampler:
        report = runner(sim.base_url, sim.api_key, targets)
        sim_usage = sampler.stop()[0]
    sim.check_alive()
    ours_s = sim_usage.cpu_s + report.usage.cpu_s
    return PeerRun(
        latency_ms=options.latency_ms,
        settle_min_s=options.settle_min_s,
        settle_max_s=options.settle_max_s,
        rate_limit_rps=options.rate_limit_rps,
        report=report,
        simulator=traffic_of(sim.stats(), report.runs_measured, sim_usage),
        machine_busy_cpu_s=sampler.machine_busy_s,
        other_cpu_s=round(max(0.0, sampler.machine_busy_s - ours_s), 2),
        load_1m_at_start=round(load_1m, 2),
        machine=describe_machine(),
    )


def traffic_of(stats: dict[str, Any], runs_measured: int, usage: Usage) -> SimulatorTraffic:
    total = int(stats["requests_total"])
    by_status = {str(k): int(v) for k, v in stats["by_status"].items()}
    limited = by_status.get("429", 0)
    return SimulatorTraffic(
        requests_total=total,
        requests_per_run=round(total / runs_measured, 2) if runs_measured else 0.0,
        by_route={str(k): int(v) for k, v in stats["by_route"].items()},
        by_status=by_status,
        rate_limited=limited,
        rate_limited_share=round(limited / total, 4) if total else 0.0,
        max_rps_1s=float(stats["max_rps_1s"]),
        cancels_received=int(stats["cancels_received"]),
        cancels_applied=int(stats["cancels_applied"]),
        runs_by_status={str(k): int(v) for k, v in stats["runs_by_status"].items()},
        usage=usage,
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _spread(p: Percentiles | None) -> str:
    return "-" if p is None else f"{p.p50:.2f} / {p.p90:.2f} / {p.p99:.2f} / {p.max:.2f} s"


def rows_of(item: PeerRun) -> list[Target]:
    """One column of the table: a peer's figures, in a fixed order."""
    r, s, sdk = item.report, item.simulator, item.report.sdk
    retries = r.sdk_retries
    waits = "-" if retries.wait_max_s is None else f"{retries.wait_min_s}-{retries.wait_max_s} s"
    return [
        ("runs measured / seeded", f"{r.runs_measured} / {r.runs_total}"),
        ("concurrency", str(r.concurrency)),
        ("simulator latency, settle, rate limit",
         f"{item.latency_ms:g} ms, {item.settle_min_s:g}-{item.settle_max_s:g} s, "
         f"{item.rate_limit_rps or '-'} rps"),
        ("endings", _counts(r.endings)),
        ("lost, by exception", _counts(r.lost_by_exception)),
        ("exceptions raised (handled or not)", _counts(r.exceptions)),
        ("wall time (measured)", f"{r.wall_s:.2f} s"),
        ("runs confirmed per second (measured)", f"{r.runs_per_s:.2f}"),
        ("wall time for all runs (extrapolated)", f"{r.extrapolated_wall_s:.1f} s"),
        ("runs confirmed per second (extrapolated)", f"{r.extrapolated_runs_per_s:.2f}"),
        ("time to outcome p50 / p90 / p99 / max", _spread(r.time_to_outcome_s)),
        ("per-run time p50 / p90 / p99 / max", _spread(r.run_s)),
        ("SDK retries (total wait; each)",
         f"{retries.count} ({retries.wait_total_s:.1f} s; {waits})"),
        ("simulator requests (per run)", f"{s.requests_total} ({s.requests_per_run:.2f})"),
        ("answers by status", _counts(s.by_status)),
        ("429 answers (share)", f"{s.rate_limited} ({s.rate_limited_share:.1%})"),
        ("peak requests in 1 s", f"{s.max_rps_1s:g}"),
        ("runs by status at the simulator", _counts(s.runs_by_status)),
        ("peer process: peak RSS, CPU", f"{r.usage.peak_rss_mib:.0f} MiB, {r.usage.cpu_s:.1f} s"),
        ("simulator: peak RSS, CPU", f"{s.usage.peak_rss_mib:.0f} MiB, {s.usage.cpu_s:.1f} s"),
        ("CPU busy, all processes (not ours)",
         f"{item.machine_busy_cpu_s:.1f} s ({item.other_cpu_s:.1f} s)"),
        ("load average (1 min) at start", f"{item.load_1m_at_start:.2f}"),
        ("SDK max_retries, timeouts",
         f"{sdk.max_retries}, read {sdk.read_timeout_s:g} s / connect {sdk.connect_timeout_s:g} s"),
        ("SDK connections max / keep-alive",
         f"{sdk.max_connections} / {sdk.max_keepalive_connections}"),
        ("SDK", f"openai {sdk.openai_version} on {sdk.transport}"),
    ]  # fmt: skip


def render(items: Sequence[PeerRun]) -> Table:
    """The peers side by side, one column each."""
    table = Table(title="peers: the official SDK, cancel then poll")
    table.add_column("figure")
    for item in items:
        table.add_column(item.report.peer, justify="right")
    columns = [rows_of(item) for item in items]
    for index, (name, _) in enumerate(columns[0] if columns else []):
        table.add_row(name, *(column[index][1] for column in columns))
    if items:
        m = items[0].machine
        table.caption = (
            f"{m.cpu_model}, {m.cores} cores, {m.ram_gib:g} GiB; {m.platform}, "
            f"Python {m.python}; {m.date_utc}"
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    console = Console(stderr=True)
    items: list[PeerRun] = []
    try:
        for item in run(options, console):
            items.append(item)
            if options.json_output:
                exclude = None if options.per_run else {"report": {"outcomes"}}
                print(item.model_dump_json(exclude=exclude), flush=True)
    except KeyboardInterrupt:
        console.print("interrupted; everything started was stopped")
        return 130
    if not options.json_output:
        Console().print(render(items))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`runctl`: thin commands that parse, call one function, and print.

Exit codes: 0 cancelled or already terminal, 2 bad input, 3 not found, 4 timed out,
5 rejected or error, 6 no outcome within --timeout, 7 skipped (its bulk job was aborted),
1 anything unexpected. `bulk-cancel --wait`: 0 all settled, 4 some timed out, 5 some
failed, 7 aborted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.bulk import bulk_app, bulk_cancel
from orchestrator.cli.notify import notify_app
from orchestrator.cli.policy import beat, enforce, events, policy_app, track, track_thread
from orchestrator.core.errors import ConfigurationError, InvalidInput, RunctlError
from orchestrator.core.models import Outcome, Result
from orchestrator.core.settings import get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Stop runs of Assistants-protocol agent platforms, one at a time or in bulk.",
)
out = Console(soft_wrap=True)  # a line is one line: greppable, never cut
err = Console(stderr=True, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_NO_OUTCOME = 6
EXIT_CODES: dict[Result, int] = {
    Result.CANCELLED: 0,
    Result.ALREADY_TERMINAL: 0,
    Result.NOT_FOUND: 3,
    Result.TIMED_OUT: 4,
    Result.REJECTED: 5,
    Result.ERROR: 5,
    Result.SKIPPED: 7,
}


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs in flight at once (default RUNCTL_WORKER_CONCURRENCY).")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option(help="Log level (default RUNCTL_LOG_LEVEL).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Node name, NAME@host (default: celery@hostname).")
    ] = None,
) -> None:
    """Start a worker: one process keeps many cancellations in flight (gevent pool)."""
    settings = get_settings()
    if settings.api_key is None:
        raise ConfigurationError("OPENAI_API_KEY is not set: a worker needs the provider's key")
    slots = concurrency or settings.worker_concurrency
    # The worker sizes its HTTP pool from this setting: keep it equal to the pool's slots.
    os.environ["RUNCTL_WORKER_CONCURRENCY"] = str(slots)
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.main", "worker",
        "--pool", "gevent",
        "--concurrency", str(slots),
        "--queues", settings.queue_name,
        "--loglevel", loglevel or settings.log_level,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if name:
        argv += ["--hostname", name]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with the worker


@app.command()
def cancel(
    thread_id: str,
    run_id: str,
    reason: Annotated[str, typer.Option(help="Why; kept in the outcome.")] = "",
    deadline: Annotated[
        float | None, typer.Option(help="Seconds the worker may spend on it.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the outcome and print it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many s.")] = 600.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Queue a cancel of one run and print its job id (with --wait, its outcome)."""
    from workers.producer import Producer

    producer = Producer(get_settings())
    try:
        fields: dict[str, object] = {"reason": reason, "requested_by": _who()}
        if deadline is not None:
            fields["deadline_s"] = deadline
        submitted = producer.cancel(thread_id, run_id, **fields)
        if json_output:
            _print_json_line({"job_id": submitted.job_id, "duplicate": submitted.duplicate})
        else:
            note = " (already in flight)" if submitted.duplicate else ""
            out.print(f"queued {submitted.job_id}{note}")
        if not wait:
            return
        outcome = producer.wait(submitted.job_id, timeout_s=timeout)
    finally:
        producer.close()
    if outcome is None:
        err.print(f"no outcome within {timeout:g} s; `runctl watch` follows it")
        raise typer.Exit(EXIT_NO_OUTCOME)
    _print_outcome(outcome, json_output)
    raise typer.Exit(EXIT_CODES[outcome.result])


@app.command()
def watch(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the stream from its start.")
    ] = False,
) -> None:
    """Follow the outcome stream, one line per outcome, until interrupted."""
    from orchestrator.store.client import redis_client
    from orchestrator.store.outcomes import follow_outcomes

    client = redis_client(get_settings(), max_connections=2)
    try:
        for outcome in follow_outcomes(client, from_start=from_start):
            _print_outcome(outcome, json_output)
    except KeyboardInterrupt:
        pass


@app.command()
def simulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    api_key: Annotated[str, typer.Option(help="Bearer key it accepts.")] = "sim-key",
    latency_ms: Annotated[float, typer.Option(help="Added to every response.")] = 0.0,
    error_5xx_rate: Annotated[float, typer.Option(help="Share of 5xx answers, 0..1.")] = 0.0,
    rate_429_rate: Annotated[float, typer.Option(help="Share of 429 answers, 0..1.")] = 0.0,
    retry_after_s: Annotated[float, typer.Option(help="Delay a 429 asks for.")] = 1.0,
    rate_limit_rps: Annotated[
        float | None, typer.Option(help="Requests/s before it answers 429.")
    ] = None,
    cancel_settle_min_s: Annotated[float, typer.Option(help="cancelling->cancelled, min.")] = 0.3,
    cancel_settle_max_s: Annotated[float, typer.Option(help="cancelling->cancelled, max.")] = 1.5,
    run_duration_s: Annotated[
        float | None, typer.Option(help="New runs complete after this; default never.")
    ] = None,
) -> None:
    """Serve a stand-in Assistants API (runs, cancel, faults) for demos and tests."""
    from orchestrator.devkit.simulator import SimulatorConfig, serve

    config = SimulatorConfig(
        api_key=api_key,
        latency_ms=latency_ms,
        error_5xx_rate=error_5xx_rate,
        rate_429_rate=rate_429_rate,
        retry_after_s=retry_after_s,
        rate_limit_rps=rate_limit_rps,
        cancel_settle_min_s=cancel_settle_min_s,
        cancel_settle_max_s=cancel_settle_max_s,
        run_duration_s=run_duration_s,
    )
    err.print(f"simulator on http://{host}:{port}/v1 (key: the --api-key value)")
    serve(config, host=host, port=port)


@app.command()
def demo(
    runs: Annotated[int, typer.Option(min=1, max=20_000, help="Stuck runs to cancel.")] = 200,
) -> None:
    """The whole thing on this machine: Redis, simulator, a worker, a bulk cancellation."""
    from orchestrator.cli.demo import run_demo

    raise typer.Exit(run_demo(runs=runs, console=out))


@app.command()
def audit(
    bulk: Annotated[str | None, typer.Option(help="Only this bulk job's jobs.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List accepted jobs with no outcome, or with more than one (exit 1 if any)."""
    from orchestrator.store.audit import audit as run_audit
    from orchestrator.store.client import redis_client

    report = run_audit(redis_client(get_settings(), max_connections=2, retries=2), bulk_id=bulk)
    if json_output:
        _print_json_line(dataclasses.asdict(report) | {"clean": report.clean})
    else:
        out.print(
            f"accepted {report.accepted}, published {report.published}, in flight "
            f"{len(report.in_flight)}, missing {len(report.missing)}, duplicated "
            f"{len(report.duplicated)}"
        )
        for job_id in report.missing:
            out.print(f"missing    {job_id}")
        for job_id, count in report.duplicated.items():
            out.print(f"duplicated {job_id} ({count} outcomes)")
    if not report.clean:
        raise typer.Exit(1)


@app.command("dead-letters")
def dead_letters(
    count: Annotated[int, typer.Option(help="How many of the newest.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Messages workers refused (not JSON, not a job, bad fields), newest first."""
    from orchestrator.store.client import redis_client
    from orchestrator.store.deadletters import DeadLetters

    client = redis_client(get_settings(), max_connections=2, retries=2)
    for entry in DeadLetters(client).newest(count):
        if json_output:
            _print_json_line(entry)
        else:
            out.print(f"{entry['reason']}  ({entry['content_type']}, {entry['bytes']} bytes)",
                      markup=False, highlight=False)  # fmt: skip


app.command("bulk-cancel")(bulk_cancel)
app.add_typer(bulk_app, name="bulk")
app.add_typer(policy_app, name="policy")
app.add_typer(notify_app, name="notify")
app.command("track")(track)
app.command("track-thread")(track_thread)
app.command("enforce")(enforce)
app.command("events")(events)
app.command("beat")(beat)


def _print_outcome(outcome: Outcome, json_output: bool) -> None:
    if json_output:
        print(outcome.model_dump_json(), flush=True)
        return
    status = f" final_status={outcome.final_status}" if outcome.final_status else ""
    error = f" error={outcome.error.http_status}:{outcome.error.message}" if outcome.error else ""
    out.print(
        f"{outcome.finished_at:%H:%M:%S} {outcome.result.value:<16} {outcome.thread_id}/"
        f"{outcome.run_id}{status} attempts={outcome.cancel_attempts} polls={outcome.polls} "
        f"{outcome.duration_s:.2f}s{error}",
        markup=False,
        highlight=False,
    )


def _print_json_line(data: dict[str, object]) -> None:
    # One compact object per line, no markup: for jq and other programs.
    print(json.dumps(data), flush=True)


def _who() -> str:
    return os.environ.get("USER", "")[:200]


def main() -> None:
    """Entry point of the `runctl` script: domain errors become clear messages and exit codes."""
    try:
        app()
    except InvalidInput as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(EXIT_BAD_INPUT)
    except RunctlError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)

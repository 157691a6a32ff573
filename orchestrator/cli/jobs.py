"""One job at a time: queue a cancel, follow outcomes, audit, dead letters."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from orchestrator.cli.console import (
    EXIT_CODES,
    EXIT_NO_OUTCOME,
    err,
    get_settings,
    operator_redis,
    out,
    print_json_line,
    producer,
    who,
)
from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import Outcome

RunIds = Annotated[
    list[str],
    typer.Argument(metavar="[THREAD_ID] RUN_ID", help="A kind without threads: RUN_ID alone."),
]
ProviderOption = Annotated[
    str | None, typer.Option(help="The connection (runctl providers); default openai.")
]


def cancel(
    ids: RunIds,
    provider: ProviderOption = None,
    reason: Annotated[str, typer.Option(help="Why; kept in the outcome.")] = "",
    deadline: Annotated[
        float | None, typer.Option(help="Seconds the worker may spend on it.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the outcome and print it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many s.")] = 600.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a job in flight for this run (one lost before it ended)."
        ),
    ] = False,
) -> None:
    """Queue a cancel of one run and print its job id (with --wait, its outcome)."""
    thread_id, run_id = split_ids(ids)
    queue = producer()
    try:
        fields: dict[str, object] = {"reason": reason, "requested_by": who()}
        if deadline is not None:
            fields["deadline_s"] = deadline
        submitted = queue.cancel(thread_id, run_id, provider=provider, force=force, **fields)
        if json_output:
            print_json_line({"job_id": submitted.job_id, "duplicate": submitted.duplicate})
        else:
            note = " (already in flight)" if submitted.duplicate else ""
            out.print(f"queued {submitted.job_id}{note}")
        if not wait:
            return
        outcome = queue.wait(submitted.job_id, timeout_s=timeout)
    finally:
        queue.close()
    if outcome is None:
        err.print(f"no outcome within {timeout:g} s; `runctl watch` follows it")
        raise typer.Exit(EXIT_NO_OUTCOME)
    print_outcome(outcome, json_output)
    raise typer.Exit(EXIT_CODES[outcome.result])


def watch(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the stream from its start.")
    ] = False,
) -> None:
    """Follow the outcome stream, one line per outcome, until interrupted."""
    from orchestrator.store.outcomes import follow_outcomes

    client = operator_redis()
    try:
        for outcome in follow_outcomes(client, from_start=from_start):
            print_outcome(outcome, json_output)
    except KeyboardInterrupt:
        pass


def audit(
    bulk: Annotated[str | None, typer.Option(help="Only this bulk job's jobs.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List accepted jobs with no outcome, or with more than one (exit 1 if any)."""
    from orchestrator.store.audit import audit as run_audit

    report = run_audit(operator_redis(), bulk_id=bulk)
    if json_output:
        print_json_line(dataclasses.asdict(report) | {"clean": report.clean})
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


def dead_letters(
    count: Annotated[int, typer.Option(help="How many of the newest.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Messages workers refused (not JSON, not a job, bad fields), newest first."""
    from orchestrator.store.deadletters import DeadLetters

    client = operator_redis()
    for entry in DeadLetters(client).newest(count):
        if json_output:
            print_json_line(entry)
        else:
            out.print(f"{entry['reason']}  ({entry['content_type']}, {entry['bytes']} bytes)",
                      markup=False, highlight=False)  # fmt: skip


def job(
    job_id: str,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where a job is: its outcome, its progress in flight, or queued (exit 3 if unknown)."""
    from orchestrator.store.lookup import job_view

    view = job_view(operator_redis(), job_id)
    if view is None:
        err.print(f"no job {job_id} (never queued, or expired with the outcomes)")
        raise typer.Exit(3)
    if json_output:
        print(view.model_dump_json(), flush=True)
        return
    if view.outcome is not None:
        print_outcome(view.outcome, json_output=False)
    elif view.progress is not None:
        p = view.progress
        accepted = "accepted" if p.cancel_accepted else "not yet accepted"
        out.print(f"{job_id} in flight: cancel {accepted}, {p.cancel_attempts} attempts, "
                  f"{p.polls} polls", markup=False, highlight=False)  # fmt: skip
    else:
        out.print(f"{job_id} queued, not started yet", markup=False, highlight=False)


def run(
    ids: RunIds,
    provider: ProviderOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What happened to a run: its job in flight, and its past outcomes (newest first)."""
    from orchestrator.service.connections import load_connections
    from orchestrator.store.lookup import run_view

    thread_id, run_id = split_ids(ids)
    settings = get_settings()
    connections = load_connections(settings)
    name = connections.resolve(provider).name
    connections.check_ids(name, thread_id, run_id)
    view = run_view(
        operator_redis(), name, thread_id, run_id, scan_limit=settings.api_run_scan_limit
    )
    if json_output:
        print(view.model_dump_json(), flush=True)
        return
    if view.in_flight is not None:
        out.print(f"in flight: job {view.in_flight.job_id} ({view.in_flight.state.value})",
                  markup=False, highlight=False)  # fmt: skip
    for outcome in view.outcomes:
        print_outcome(outcome, json_output=False)
    if view.in_flight is None and not view.outcomes:
        scope = "" if view.complete else f" among the newest {view.scanned} outcomes"
        out.print(f"no job in flight and no outcome{scope} for this run")


def split_ids(ids: list[str]) -> tuple[str | None, str]:
    """`[THREAD_ID] RUN_ID` as (thread id or None, run id)."""
    if len(ids) == 1:
        return None, ids[0]
    if len(ids) == 2:
        return ids[0], ids[1]
    raise InvalidInput("THREAD_ID RUN_ID", "give a run id, after its thread id if it has one")


def print_outcome(outcome: Outcome, json_output: bool) -> None:
    if json_output:
        print(outcome.model_dump_json(), flush=True)
        return
    status = f" final_status={outcome.final_status}" if outcome.final_status else ""
    error = f" error={outcome.error.http_status}:{outcome.error.message}" if outcome.error else ""
    run = f"{outcome.thread_id}/{outcome.run_id}" if outcome.thread_id else outcome.run_id
    out.print(
        f"{outcome.finished_at:%H:%M:%S} {outcome.result.value:<16} {outcome.provider} "
        f"{run}{status} attempts={outcome.cancel_attempts} polls={outcome.polls} "
        f"{outcome.duration_s:.2f}s{error}",
        markup=False,
        highlight=False,
    )

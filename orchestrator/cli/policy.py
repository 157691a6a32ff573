"""`runctl policy check`, `track`, `track-thread`, `enforce`, `events`, `beat`: thin commands
over timeout enforcement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from orchestrator.cli import console
from orchestrator.cli.console import (
    check_file,
    get_settings,
    operator_redis,
    out,
    print_line,
)
from orchestrator.cli.jobs import ProviderOption, split_ids
from orchestrator.core.errors import InvalidInput, RunctlError

policy_app = typer.Typer(
    no_args_is_help=True, help="Check timeout enforcement policies.", rich_markup_mode=None
)


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Validate a policy file; print each problem with its line and field (exit 2 if any)."""
    from orchestrator.core.policies import check_policies

    check_file(file, check_policies)


def track(
    ids: Annotated[list[str], typer.Argument(metavar="[THREAD_ID] RUN_ID")],
    provider: ProviderOption = None,
) -> None:
    """Have the enforcer watch a run (producers call this as they create runs)."""
    thread_id, run_id = split_ids(ids)
    queue = console.producer()
    try:
        added = queue.track(thread_id, run_id, provider=provider)
    finally:
        queue.close()
    shown = " ".join(i for i in (thread_id, run_id) if i)
    out.print(f"tracking {shown}" + ("" if added else " (already tracked)"))


def track_thread(thread_id: str, provider: ProviderOption = None) -> None:
    """Have the enforcer list this thread's runs on every pass."""
    queue = console.producer()
    try:
        added = queue.track_thread(thread_id, provider=provider)
    finally:
        queue.close()
    out.print(f"watching thread {thread_id}" + ("" if added else " (already watched)"))


def enforce(
    once: Annotated[bool, typer.Option("--once", help="Run one pass now.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what it would do.")] = False,
    policies: Annotated[
        str | None, typer.Option(help="Policy file (RUNCTL_POLICIES_FILE).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """One enforcement pass by hand (`runctl beat` runs them on a schedule)."""
    if not once:
        raise InvalidInput("--once", "is required: passes on a schedule come from `runctl beat`")
    from workers.enforcing import make_enforcer

    producer = console.producer()
    try:
        enforcer = make_enforcer(
            get_settings(), producer.redis, producer.cancel_many, policies_file=policies
        )
        report = enforcer.run_once(dry_run=dry_run)
    finally:
        producer.close()
    if not report.acted:
        raise RunctlError("another enforcer is acting now; nothing done")
    verb = "would do" if dry_run else "did"
    for event in report.events:
        print_line(json_output, {"dry_run": dry_run, **event}, f"{verb}: {_describe(event)}")
    summary = {"dry_run": dry_run, "looked_at": report.looked_at, "actions": len(report.events)}
    print_line(
        json_output, summary, f"looked at {report.looked_at} runs; {len(report.events)} actions"
    )


def events(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Wait for new events.")] = False,
    count: Annotated[int, typer.Option(help="How many of the latest to show.")] = 100,
) -> None:
    """Enforcement actions: cancelled, reported, escalated, alerted."""
    from orchestrator.store import keys

    client = operator_redis()
    entries = cast(list[Any], client.xrevrange(keys.EVENTS, count=count))[::-1]
    last_id = keys.text(entries[-1][0]) if entries else "0-0"
    for _, fields in entries:
        _show_event(fields, json_output)
    while follow:
        reply = cast(list[Any], client.xread({keys.EVENTS: last_id}, block=5000, count=500))
        for _stream, batch in reply or []:
            for entry_id, fields in batch:
                last_id = keys.text(entry_id)
                _show_event(fields, json_output)


def _show_event(fields: dict[bytes, bytes], json_output: bool) -> None:
    event = json.loads(fields[b"event"])
    print_line(json_output, event, _describe(event))


def _describe(event: dict[str, Any]) -> str:
    run = event.get("run", {})
    detail = {k: v for k, v in event.items() if k not in {"action", "run", "at"}}
    extras = " ".join(f"{k}={v}" for k, v in detail.items())
    where = "/".join(str(run[k]) for k in ("provider", "thread_id", "run_id") if run.get(k))
    return f"{event['action']:<10} {where} {extras}"

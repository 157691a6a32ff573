"""`runctl policy check`, `track`, `track-thread`, `enforce`, `events`, `beat`: thin commands
over timeout enforcement."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from orchestrator.core.errors import InvalidInput, RunctlError
from orchestrator.core.policies import check_policies
from orchestrator.core.settings import get_settings
from orchestrator.store import keys
from orchestrator.store.tracking import Tracker

policy_app = typer.Typer(no_args_is_help=True, help="Check timeout enforcement policies.")
out = Console(soft_wrap=True)  # a line is one line: greppable, never cut
err = Console(stderr=True, soft_wrap=True)


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Validate a policy file; print each problem with its line and field (exit 2 if any)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("FILE", f"cannot be read: {exc.strerror}", str(file)) from None
    problems = check_policies(text)
    for problem in problems:
        err.print(f"{file}: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(2)
    out.print(f"{file}: ok")


def track(thread_id: str, run_id: str) -> None:
    """Have the enforcer watch a run (producers call this as they create runs)."""
    tracker = Tracker(_redis())
    added = tracker.track(thread_id, run_id, now_s=time.time())
    out.print(f"tracking {thread_id} {run_id}" + ("" if added else " (already tracked)"))


def track_thread(thread_id: str) -> None:
    """Have the enforcer list this thread's runs on every pass."""
    added = Tracker(_redis()).watch_thread(thread_id)
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
    from workers.producer import Producer

    producer = Producer(get_settings())
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
        _print(json_output, {"dry_run": dry_run, **event}, f"{verb}: {_describe(event)}")
    summary = {"dry_run": dry_run, "looked_at": report.looked_at, "actions": len(report.events)}
    _print(json_output, summary, f"looked at {report.looked_at} runs; {len(report.events)} actions")


def events(
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Wait for new events.")] = False,
    count: Annotated[int, typer.Option(help="How many of the latest to show.")] = 100,
) -> None:
    """Enforcement actions: cancelled, reported, escalated, alerted."""
    client = _redis()
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


def beat() -> None:
    """Start Celery beat: it sends one enforcement pass every RUNCTL_ENFORCE_INTERVAL_S."""
    schedule = Path(tempfile.gettempdir()) / f"runctl-beat-{os.getpid()}"
    argv = [sys.executable, "-m", "celery", "-A", "workers.main", "beat",
            "--schedule", str(schedule), "--loglevel", get_settings().log_level]  # fmt: skip
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with beat


def _show_event(fields: dict[bytes, bytes], json_output: bool) -> None:
    event = json.loads(fields[b"event"])
    _print(json_output, event, _describe(event))


def _describe(event: dict[str, Any]) -> str:
    run = event.get("run", {})
    detail = {k: v for k, v in event.items() if k not in {"action", "run", "at"}}
    extras = " ".join(f"{k}={v}" for k, v in detail.items())
    return f"{event['action']:<10} {run.get('thread_id')}/{run.get('run_id')} {extras}"


def _print(json_output: bool, data: dict[str, Any], line: str) -> None:
    if json_output:
        print(json.dumps(data), flush=True)
    else:
        out.print(line, markup=False, highlight=False)


def _redis() -> Any:
    from orchestrator.store.client import redis_client

    return redis_client(get_settings(), max_connections=2, retries=2)

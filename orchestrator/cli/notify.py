"""`runctl notify run|check|test|failed|replay`: thin commands over the notifier.

The subscriptions are the `[[notify]]` tables of the policy file (`RUNCTL_POLICIES_FILE`,
default `runctl.toml`; `--config` names another).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.console import check_file, err, out
from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.settings import get_settings
from orchestrator.notify.config import NotifyConfig, check_notify, read_notify

notify_app = typer.Typer(no_args_is_help=True, help="Deliver outcomes and alerts over HTTP.")

ConfigOption = Annotated[
    str | None,
    typer.Option(
        "--config", help="The file with the notify tables (default RUNCTL_POLICIES_FILE)."
    ),
]


@notify_app.command("run")
def run(config: ConfigOption = None) -> None:
    """Start a notifier: reads the streams through a consumer group and delivers, until
    SIGTERM or Ctrl-C. Run several for availability: what a dead one held is taken over."""
    from orchestrator.core.logs import configure
    from orchestrator.service.notifier import open_notifier, startup_problems

    settings = get_settings()
    configure(json_lines=settings.log_json, level=settings.log_level)
    loaded = _load(config)
    problems = startup_problems(loaded, os.environ)
    if problems:
        raise ConfigurationError("; ".join(problems))
    notifier = open_notifier(settings, loaded, os.environ)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        notifier.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        notifier.close()


@notify_app.command("check")
def check(file: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate the notify tables; print each problem with its line and field (exit 2)."""
    check_file(file or Path(get_settings().policies_file), check_notify)


@notify_app.command("test")
def send_test_event(name: str, config: ConfigOption = None) -> None:
    """Send a test event to the subscription NAME now; exit 1 if it did not land."""
    from orchestrator.notify.sender import Sender
    from orchestrator.service.notifier import send_test

    loaded = _load(config)
    options = loaded.notifier
    sender = Sender(allow_hosts=options.allow_hosts, timeout_s=options.timeout,
                    max_response_bytes=options.max_response_bytes)  # fmt: skip
    try:
        attempt = send_test(loaded, name, sender, os.environ)
    finally:
        sender.close()
    if not attempt.delivered:
        err.print(f"{name}: not delivered: {attempt.error}", markup=False, highlight=False)
        raise typer.Exit(1)
    out.print(f"{name}: delivered (HTTP {attempt.status})")


@notify_app.command("failed")
def failed(
    count: Annotated[int, typer.Option(help="How many of the newest.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Deliveries that failed for good, newest first, with why."""
    from orchestrator.service.notifier import failed_deliveries

    for delivery in failed_deliveries(_store(), count):
        if json_output:
            print(delivery.model_dump_json(), flush=True)
            continue
        when = datetime.fromtimestamp(delivery.failed_at or 0, UTC)
        out.print(f"{when:%Y-%m-%d %H:%M:%S} {delivery.id} {delivery.subscription} "
                  f"{delivery.event.type} attempts={delivery.attempts} {delivery.last_error}",
                  markup=False, highlight=False)  # fmt: skip


@notify_app.command("replay")
def replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids (webhook-id).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every failed delivery.")] = False,
) -> None:
    """Send failed deliveries again (same webhook-id), on a fresh retry schedule."""
    from orchestrator.service.notifier import replay as replay_failed

    if not ids and not every:
        raise InvalidInput("IDS", "name delivery ids, or pass --all")
    moved = replay_failed(_store(), ids or [], every=every, now_s=time.time())
    out.print(f"{moved} deliveries queued again; a running notifier sends them")


def _load(config: str | None) -> NotifyConfig:
    return read_notify(config or get_settings().policies_file)


def _store() -> Any:
    from orchestrator.store.client import redis_client
    from orchestrator.store.notify import NotifyStore

    return NotifyStore(redis_client(get_settings(), max_connections=2, retries=2))

"""`runctl`: thin commands that parse, call one function, and print.

One module per command group (`jobs`, `bulk`, `policy`, `processes`); what they share
(consoles, exit codes, printing, clients) is in `console`, whose docstring lists the exit
codes.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli import bulk, jobs, notify, policy, processes, providers, serve
from orchestrator.cli.console import EXIT_BAD_INPUT, err, out
from orchestrator.core.errors import InvalidInput, RunctlError

# Plain help text (click's): typer's rich help loads markdown and traceback rendering,
# about 0.3 s, and every command must start fast (issue 11).
app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Stop runs of LLM agent platforms (Assistants, Azure, LangGraph, Responses), one "
    "at a time or in bulk.",
)

app.command()(processes.worker)
app.command()(jobs.cancel)
app.command()(jobs.watch)
app.command()(jobs.job)
app.command()(jobs.run)
app.command()(processes.simulator)
app.command()(processes.demo)
app.command()(jobs.audit)
app.command("dead-letters")(jobs.dead_letters)
app.command("bulk-cancel")(bulk.bulk_cancel)
app.add_typer(bulk.bulk_app, name="bulk")
app.add_typer(policy.policy_app, name="policy")
app.add_typer(notify.notify_app, name="notify")
app.command("track")(policy.track)
app.command("track-thread")(policy.track_thread)
app.command("enforce")(policy.enforce)
app.command("events")(policy.events)
app.command("beat")(processes.beat)
app.command("metrics")(processes.metrics)
app.add_typer(providers.providers_app, name="providers")
app.command()(serve.serve)
app.add_typer(serve.api_app, name="api")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        out.print(f"runctl {version('run-orchestrator')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """The options every command shares (the help text is the app's)."""


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

"""`runctl providers` and `runctl providers check NAME`: the named connections."""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated

import typer

from orchestrator.cli.console import out, print_line
from orchestrator.core.errors import RunctlError
from orchestrator.core.settings import get_settings

providers_app = typer.Typer(
    invoke_without_command=True, help="List the connections (runctl.toml), or check one."
)


@providers_app.callback()
def list_providers(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Each connection: kind, base URL, rate limit, and whether its credential is present."""
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.service.connections import describe, load_connections

    settings = get_settings()
    for info in describe(load_connections(settings), settings, os.environ):
        limit = "off" if not info.rate_limit_rps else f"{info.rate_limit_rps:g}/s"
        print_line(
            json_output,
            dataclasses.asdict(info),
            f"{info.name:<16} {info.kind:<24} {info.base_url}  limit {limit}  "
            f"credential {info.credential}",
        )


@providers_app.command("check")
def check(name: str) -> None:
    """One harmless authenticated request: "reachable and authenticated", or what is wrong
    (exit 1)."""
    from orchestrator.providers.base import BuildOptions
    from orchestrator.service.connections import load_connections, probe

    settings = get_settings()
    connection = load_connections(settings).get(name)
    options = BuildOptions(1, settings.read_timeout_s, settings.connect_timeout_s)
    ok, what = probe(connection, options, environ=os.environ)
    if not ok:
        raise RunctlError(f"{name}: {what}")
    out.print(f"{name}: {what}", markup=False, highlight=False)

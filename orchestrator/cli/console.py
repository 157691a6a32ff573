"""What every `runctl` command shares: the two consoles, the exit codes, how a line is
printed, who is asking, and the clients an operator's command opens.

Exit codes: 0 cancelled or already terminal, 2 bad input, 3 not found, 4 timed out,
5 rejected or error, 6 no outcome within --timeout, 7 skipped (its bulk job was aborted),
1 anything unexpected. `bulk-cancel --wait`: 0 all settled, 4 some timed out, 5 some
failed, 7 aborted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import Result

if TYPE_CHECKING:
    import redis

    from orchestrator.core.settings import Settings
    from workers.producer import Producer

out = Console(soft_wrap=True)  # a line is one line: greppable, never cut
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED = 5  # also: some jobs of a bulk job failed
EXIT_BAD_INPUT = 2
EXIT_TIMED_OUT = 4
EXIT_NO_OUTCOME = 6
EXIT_ABORTED = 7
EXIT_CODES: dict[Result, int] = {
    Result.CANCELLED: 0,
    Result.ALREADY_TERMINAL: 0,
    Result.NOT_FOUND: 3,
    Result.TIMED_OUT: EXIT_TIMED_OUT,
    Result.REJECTED: EXIT_FAILED,
    Result.ERROR: EXIT_FAILED,
    Result.SKIPPED: EXIT_ABORTED,
}


def check_file(path: Path, check: Callable[[str], Sequence[object]]) -> None:
    """`runctl ... check FILE`: read the file, print each problem `check` finds with the
    file's name and exit 2, or print `ok`; an unreadable file is bad input."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("FILE", f"cannot be read: {exc.strerror}", str(path)) from None
    problems = check(text)
    for problem in problems:
        err.print(f"{path}: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(EXIT_BAD_INPUT)
    out.print(f"{path}: ok")


def print_line(json_output: bool, data: dict[str, Any], line: str) -> None:
    """`data` as one compact JSON object (for jq and other programs), or `line` as text."""
    if json_output:
        print_json_line(data)
    else:
        out.print(line, markup=False, highlight=False)


def print_json_line(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def who() -> str:
    """The operator, as recorded in `requested_by`."""
    return os.environ.get("USER", "")[:200]


def get_settings() -> Settings:
    """The settings (pydantic-settings is loaded here, not when the CLI starts)."""
    from orchestrator.core.settings import get_settings as load

    return load()


def operator_redis() -> redis.Redis:
    """A small client that fails fast: an operator's command should not ride out a Redis
    restart the way a worker does."""
    from orchestrator.store.client import redis_client

    return redis_client(get_settings(), max_connections=2, retries=2)


def producer() -> Producer:
    """The producer on the configured broker (imports Celery: only commands that queue)."""
    from workers.producer import Producer

    return Producer(get_settings())

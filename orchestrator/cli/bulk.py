"""`runctl bulk-cancel` and `runctl bulk status|abort|report`: thin commands over bulk jobs."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from orchestrator.cli import console
from orchestrator.cli.console import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_TIMED_OUT,
    err,
    get_settings,
    out,
    print_line,
    who,
)
from orchestrator.core.connections import Connection
from orchestrator.core.errors import InvalidInput, RunctlError
from orchestrator.core.models import Result
from orchestrator.service.targets import (
    Problem,
    Target,
    read_targets,
    read_thread_ids,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from orchestrator.core.settings import Settings
    from orchestrator.store.bulk import BulkRecord
    from workers.producer import Producer

# Only what `--help` needs is imported above: Redis, rich's progress and the discovery are
# loaded by the commands that use them, so that every command starts fast.
bulk_app = typer.Typer(
    no_args_is_help=True, help="Follow, abort and report bulk jobs.", rich_markup_mode=None
)

FOLLOW_INTERVAL_S = 0.5
DISCOVERY_DEADLINE_S = 60.0


def bulk_cancel(
    file: Annotated[
        str | None,
        typer.Argument(
            help="JSON lines or CSV ([thread_id,]run_id[,reason][,provider]); - = stdin."
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(help="The connection of runs that name none (runctl providers)."),
    ] = None,
    thread: Annotated[
        list[str] | None, typer.Option("--thread", help="Cancel this thread's matching runs.")
    ] = None,
    threads_file: Annotated[
        Path | None, typer.Option(help="Thread ids, one per line, to list runs from.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="With threads: statuses to cancel, comma-separated (default: live)."),
    ] = None,
    older_than: Annotated[
        str | None, typer.Option(help="With threads: only runs created this long ago (30m).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List, count, cancel nothing.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option(help="Provider requests/s for this bulk job (and the global).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why; kept in each outcome.")] = "",
    deadline: Annotated[float | None, typer.Option(help="Seconds per job.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace jobs in flight for these runs (lost ones)."),
    ] = False,
) -> None:
    """Cancel many runs: from a file, or from the runs of listed threads."""
    settings = get_settings()
    if rate is not None and rate <= 0:
        raise InvalidInput("rate", "must be more than 0 requests per second", rate)
    if deadline is not None and deadline <= 0:
        raise InvalidInput("deadline", "must be more than 0 seconds", deadline)
    from orchestrator.service.connections import load_connections

    connections = load_connections(settings)
    connection = connections.resolve(provider)  # an unknown name stops here (exit 2)
    targets = _targets(settings, connection, file, thread or [], threads_file, status, older_than)
    if dry_run:
        raise typer.Exit(_dry_run(targets, json_output))
    from workers.producer import Producer

    producer = Producer(settings, connections=connections)
    try:
        with _QueueingBar(producer, json_output=json_output) as bar:
            bulk_id = producer.bulk_cancel(
                targets,
                on_problem=lambda p: _print_problem(p, json_output),
                reason=reason,
                requested_by=who(),
                source=file or f"threads: {len(thread or [])} listed, file {threads_file}",
                deadline_s=deadline,
                rate_limit_rps=rate,
                on_start=bar.start,
                on_batch=bar.advance,
                provider=connection.name,
                force=force,
            )
        record = _record(producer, bulk_id)
        summary = (
            f"bulk {bulk_id}: {record.queued} queued, {record.repeated} repeated, "
            f"{record.in_flight_elsewhere} already in flight, {record.invalid} refused"
        )
        print_line(json_output, {"bulk_id": bulk_id, **_counts(record)}, summary)
        if wait:
            record = follow_bulk(producer, bulk_id, json_output=json_output)
    finally:
        producer.close()
    if wait:
        raise typer.Exit(_exit_code(record))


@bulk_app.command("status")
def status_command(
    bulk_id: str,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where a bulk job stands: counts per result."""
    producer = console.producer()
    try:
        record = _record(producer, bulk_id)
    finally:
        producer.close()
    if json_output:
        print(record.model_dump_json())
    else:
        out.print(_table(record))


@bulk_app.command("abort")
def abort_command(bulk_id: str) -> None:
    """Stop a bulk job: nothing more is sent; jobs not done end `skipped`."""
    producer = console.producer()
    try:
        record = producer.bulks.abort(bulk_id)
    finally:
        producer.close()
    if record is None:
        raise RunctlError(f"no bulk job {bulk_id}")
    out.print(
        f"aborted {bulk_id}: {record.done} of {record.queued} done; "
        f"the other {record.queued - record.done} will end skipped"
    )


@bulk_app.command("report")
def report_command(
    bulk_id: str,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON outcome per line.")] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV with a header.")] = False,
) -> None:
    """One row per run with its outcome. A run another job was already cancelling has the
    result in_flight_elsewhere and that job's id (in JSON: {"in_flight_elsewhere": {...}})."""
    producer = console.producer()
    try:
        _record(producer, bulk_id)
        _write_report(producer, bulk_id, sys.stdout, json_output, csv_output)
    finally:
        producer.close()


def _write_report(
    producer: Producer, bulk_id: str, stream: TextIO, json_output: bool, csv_output: bool
) -> None:
    from orchestrator.service.reports import csv_lines, json_lines

    lines = json_lines if json_output and not csv_output else csv_lines
    stream.writelines(lines(producer.bulks, bulk_id))


def _targets(
    settings: Settings,
    connection: Connection,
    file: str | None,
    threads: list[str],
    threads_file: Path | None,
    status: str | None,
    older_than: str | None,
) -> Iterator[Target | Problem]:
    if file is not None and (threads or threads_file):
        raise InvalidInput("FILE", "give a file, or threads to list runs from, not both")
    if file is not None:
        stream = sys.stdin if file == "-" else _open(file)
        return read_targets(stream)
    if not threads and threads_file is None:
        raise InvalidInput("FILE", "give a file (or -), or --thread / --threads-file")
    from orchestrator.service.discovery import listed_targets

    thread_ids = [*threads, *(read_thread_ids(_open(str(threads_file))) if threads_file else [])]
    from orchestrator.store.client import redis_client

    client = redis_client(settings, max_connections=2)  # the process's; it ends with it
    return listed_targets(
        settings, connection, thread_ids, status=status, older_than=older_than, client=client
    )


def _dry_run(targets: Iterator[Target | Problem], json_output: bool) -> int:
    runs: set[tuple[str | None, str | None, str]] = set()
    problems = 0
    for item in targets:
        if isinstance(item, Problem):
            problems += 1
            _print_problem(item, json_output)
            continue
        key = (item.provider, item.thread_id, item.run_id)
        repeated = key in runs
        runs.add(key)
        shown = " ".join(i for i in key if i)
        print_line(
            json_output,
            {"would_cancel": {"provider": item.provider, "thread_id": item.thread_id,
                              "run_id": item.run_id, "source": item.source,
                              "repeated": repeated}},
            f"would cancel {shown} ({item.source})"
            + (" (repeated)" if repeated else ""),
        )  # fmt: skip
    print_line(
        json_output,
        {"dry_run": True, "runs": len(runs), "problems": problems},
        f"dry run: {len(runs)} runs would be cancelled, {problems} problems; nothing was sent",
    )
    return 0


class _QueueingBar:
    """While a bulk job's targets are read and queued: the bulk id first (for `bulk abort`
    from another shell), then a transient bar on stderr that moves after each batch. It
    runs in the caller's thread; problems print above it, through the same console."""

    def __init__(self, producer: Producer, *, json_output: bool, console: Console = err) -> None:
        self._producer = producer
        self._json_output = json_output
        self._bulk_id = ""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True, disable=json_output,
        )  # fmt: skip
        self._task = self._progress.add_task("queueing", total=None)

    def __enter__(self) -> _QueueingBar:
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def start(self, bulk_id: str) -> None:
        self._bulk_id = bulk_id
        line = f"bulk {bulk_id} started; queueing..."
        print_line(self._json_output, {"started": bulk_id}, line)
        self._progress.start()  # after the line: stdout and the bar never share a line

    def advance(self) -> None:
        record = _record(self._producer, self._bulk_id)
        self._progress.update(
            self._task,
            description=f"queueing: {record.seen + record.invalid} read, "
            f"{record.queued} queued, {record.done} done",
        )


def follow_bulk(
    producer: Producer, bulk_id: str, *, json_output: bool, console: Console | None = None
) -> BulkRecord:
    """Show a live progress bar (per-result counts, rate) until the bulk job is done."""
    record = _record(producer, bulk_id)
    started = time.monotonic()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("[bold]{task.fields[label]}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=console or err, disable=json_output) as bar:
        task = bar.add_task("", total=max(1, record.queued), label="cancelling")
        while not record.finished:
            time.sleep(FOLLOW_INTERVAL_S)
            record = _record(producer, bulk_id)
            rate = record.done / max(0.001, time.monotonic() - started)
            counts = "  ".join(f"{r.value} {n}" for r, n in sorted(record.results.items()))
            bar.update(
                task,
                total=max(1, record.queued),
                completed=record.done,
                description=f"{counts}  {rate:.0f}/s",
                label=record.status.value,
            )
    if json_output:
        print(record.model_dump_json())
    else:
        (console or out).print(_table(record))
    return record


def _exit_code(record: BulkRecord) -> int:
    from orchestrator.store.bulk import BulkStatus

    if record.status is BulkStatus.ABORTED:
        return EXIT_ABORTED
    if record.results.get(Result.ERROR) or record.results.get(Result.REJECTED):
        return EXIT_FAILED
    if record.results.get(Result.TIMED_OUT):
        return EXIT_TIMED_OUT
    return 0


def _table(record: BulkRecord) -> Table:
    from rich.table import Table

    from orchestrator.store.bulk import BulkStatus

    state = "finished" if record.finished and record.status is BulkStatus.RUNNING else None
    table = Table(title=f"{record.bulk_id} ({state or record.status.value})")
    table.add_column("")
    table.add_column("runs", justify="right")
    for name, value in _counts(record).items():
        table.add_row(name, str(value))
    return table


def _counts(record: BulkRecord) -> dict[str, int]:
    counts = {
        "queued": record.queued,
        "done": record.done,
        "repeated (cancelled once)": record.repeated,
        "already in flight elsewhere": record.in_flight_elsewhere,
        "refused lines or threads": record.invalid,
    }
    ordered = Counter({r.value: n for r, n in record.results.items()})
    return counts | dict(sorted(ordered.items()))


def _record(producer: Producer, bulk_id: str) -> BulkRecord:
    record = producer.bulks.get(bulk_id)
    if record is None:
        raise RunctlError(
            f"no bulk job {bulk_id} (ids look like bulk_…; they expire with outcomes)"
        )
    return record


def _print_problem(problem: Problem, json_output: bool) -> None:
    if json_output:
        print(json.dumps({"problem": {"where": problem.where, "field": problem.field,
                                      "rule": problem.rule}}), flush=True)  # fmt: skip
    else:
        err.print(f"skipped {problem}", markup=False, highlight=False)


def _open(path: str) -> TextIO:
    try:
        # utf-8-sig: a spreadsheet's byte-order mark must not spoil the first line.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InvalidInput("FILE", f"cannot be read: {exc.strerror}", path) from None

"""Where the runs to cancel come from: a file of lines, or the runs of listed threads.

Both yield `Target`s as they go (a 100,000-line file is never held whole) and report each
bad line or thread as a `Problem`, never stopping the good ones.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.models import RunStatus, SafeId
from orchestrator.providers.base import ProviderError, RunPage, RunsProvider

DEFAULT_STATUSES: frozenset[str] = frozenset(
    {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION}
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Target:
    """One run to cancel, and where it was found (a line number, or a thread)."""

    thread_id: str
    run_id: str
    reason: str = ""
    source: str = ""


@dataclass(frozen=True)
class Problem:
    """Something that could not become a target: where, which field, and the rule."""

    where: str
    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.rule}"


class _Line(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: SafeId
    run_id: SafeId
    reason: str = Field(default="", max_length=500)


def read_targets(lines: Iterable[str]) -> Iterator[Target | Problem]:
    """Targets from JSON lines (`{"thread_id", "run_id"[, "reason"]}`) or from CSV with a
    header `thread_id,run_id[,reason]`; the first non-blank line decides which."""
    numbered = (
        (n, line.removeprefix("\ufeff")) for n, line in enumerate(lines, start=1) if line.strip()
    )
    first = next(numbered, None)
    if first is None:
        return
    rest = _chain(first, numbered)
    # CSV starts with a header row; anything else is JSON lines, whose bad lines (even a
    # bad first one) are reported one by one.
    if not _looks_like_csv_header(first[1]):
        yield from _json_lines(rest)
    else:
        yield from _csv_lines(rest)


def _looks_like_csv_header(line: str) -> bool:
    return not line.lstrip().startswith("{") and "," in line


def _json_lines(numbered: Iterator[tuple[int, str]]) -> Iterator[Target | Problem]:
    for n, line in numbered:
        try:
            data = json.loads(line)
        except ValueError:
            yield Problem(f"line {n}", "line", "is not valid JSON")
            continue
        if not isinstance(data, dict):
            yield Problem(f"line {n}", "line", "must be a JSON object")
            continue
        yield _target(data, f"line {n}")


def _csv_lines(numbered: Iterator[tuple[int, str]]) -> Iterator[Target | Problem]:
    header_n, header = next(numbered)
    columns = [c.strip() for c in _csv_row(header) or []]
    if "thread_id" not in columns or "run_id" not in columns:
        yield Problem(f"line {header_n}", "header", "must name the columns thread_id and run_id")
        return
    for n, line in numbered:
        values = _csv_row(line)
        if values is None:
            yield Problem(f"line {n}", "line", "is not valid CSV")
            continue
        if len(values) > len(columns):
            yield Problem(
                f"line {n}", "line", f"has {len(values)} fields, the header {len(columns)}"
            )
            continue
        yield _target(dict(zip(columns, (v.strip() for v in values), strict=False)), f"line {n}")


def _csv_row(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line.rstrip("\r\n")]), [])
    except csv.Error:
        return None


def _target(data: dict[str, object], where: str) -> Target | Problem:
    try:
        line = _Line.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "line"
        return Problem(where, field, str(first["msg"]).removeprefix("Value error, "))
    return Target(line.thread_id, line.run_id, line.reason, where)


def discover(
    provider: RunsProvider,
    thread_ids: Iterable[str],
    *,
    statuses: frozenset[str] = DEFAULT_STATUSES,
    older_than_s: float | None = None,
    now_s: float,
    call: Callable[[Callable[[], RunPage]], RunPage] = lambda fn: fn(),
) -> Iterator[Target | Problem]:
    """The runs of each thread (every page) whose status is in `statuses` and, with
    `older_than_s`, created at least that long before `now_s`. `call` wraps each request
    (the CLI passes the rate limiter and the retry policy)."""
    for thread_id in thread_ids:
        checked = _target({"thread_id": thread_id, "run_id": "run_placeholder"}, "--thread")
        if isinstance(checked, Problem):
            yield Problem(f"thread {thread_id!r}", "thread_id", checked.rule)
            continue
        try:
            yield from _thread_targets(provider, thread_id, statuses, older_than_s, now_s, call)
        except ProviderError as error:
            yield Problem(f"thread {thread_id}", "thread_id", f"listing failed: {error.message}")


def _thread_targets(
    provider: RunsProvider,
    thread_id: str,
    statuses: frozenset[str],
    older_than_s: float | None,
    now_s: float,
    call: Callable[[Callable[[], RunPage]], RunPage],
) -> Iterator[Target]:
    after: str | None = None
    while True:
        page = call(partial(provider.list_runs, thread_id, after=after))
        for run in page.runs:
            old_enough = older_than_s is None or (
                run.created_at is not None and run.created_at <= now_s - older_than_s
            )
            if run.status in statuses and old_enough:
                yield Target(thread_id, run.id, "", f"thread {thread_id}")
        if not page.has_more or page.last_id is None:
            return
        after = page.last_id


def parse_duration_s(text: str) -> float:
    """`90`, `90s`, `30m`, `2h`, `1d` as seconds; ValueError naming the rule otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError("must be a number with an optional unit s, m, h or d (e.g. 30m)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def read_thread_ids(lines: Iterable[str]) -> Iterator[str]:
    """Thread ids, one per line; blank lines and `#` comments are skipped."""
    for line in lines:
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            yield stripped


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest

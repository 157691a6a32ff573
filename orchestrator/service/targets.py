"""Runs to cancel from a file of lines (JSON lines or CSV); see `discovery` for the runs of
listed threads.

Both yield `Target`s as they go (a 100,000-line file is never held whole) and report each
bad line or thread as a `Problem`, never stopping the good ones.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.core.models import ConnectionName, SafeId


@dataclass(frozen=True)
class Target:
    """One run to cancel, and where it was found (a line number, or a thread).

    `provider` is the connection's name (None: the bulk job's default); `thread_id` is None
    for a kind without threads."""

    thread_id: str | None
    run_id: str
    reason: str = ""
    source: str = ""
    provider: str | None = None


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

    thread_id: SafeId | None = None
    run_id: SafeId
    reason: str = Field(default="", max_length=500)
    provider: ConnectionName | None = None


def read_targets(lines: Iterable[str]) -> Iterator[Target | Problem]:
    """Targets from JSON lines (`{["thread_id",] "run_id"[, "reason"][, "provider"]}`) or
    from CSV with a header naming `run_id` (and `thread_id`, `reason`, `provider` as
    needed); the first non-blank line decides which. Empty fields count as absent."""
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
    stripped = line.strip()
    return not stripped.startswith("{") and ("," in stripped or stripped == "run_id")


def _json_lines(numbered: Iterator[tuple[int, str]]) -> Iterator[Target | Problem]:
    # pydantic parses and validates each line in one pass (no `json.loads` first): the
    # reading of a 100,000-line file must not be what an operator waits for.
    for n, line in numbered:
        try:
            parsed = _Line.model_validate_json(line)
        except ValidationError as exc:
            yield _problem(exc, f"line {n}")
            continue
        yield Target(parsed.thread_id, parsed.run_id, parsed.reason, f"line {n}", parsed.provider)


def _csv_lines(numbered: Iterator[tuple[int, str]]) -> Iterator[Target | Problem]:
    header_n, header = next(numbered)
    columns = [c.strip() for c in _csv_row(header) or []]
    if "run_id" not in columns:
        yield Problem(f"line {header_n}", "header", "must name the column run_id")
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
        row = dict(zip(columns, (v.strip() for v in values), strict=False))
        yield check_target({k: v for k, v in row.items() if v}, f"line {n}")


def _csv_row(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line.rstrip("\r\n")]), [])
    except csv.Error:
        return None


def check_target(data: dict[str, object], where: str) -> Target | Problem:
    try:
        line = _Line.model_validate(data)
    except ValidationError as exc:
        return _problem(exc, where)
    return Target(line.thread_id, line.run_id, line.reason, where, line.provider)


def _problem(exc: ValidationError, where: str) -> Problem:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return Problem(where, "line", "is not valid JSON")
    if first["type"] == "model_type" and not first["loc"]:
        return Problem(where, "line", "must be a JSON object")
    field = ".".join(str(p) for p in first["loc"]) or "line"
    return Problem(where, field, str(first["msg"]).removeprefix("Value error, "))


def read_thread_ids(lines: Iterable[str]) -> Iterator[str]:
    """Thread ids, one per line; blank lines and `#` comments are skipped."""
    for line in lines:
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            yield stripped


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest

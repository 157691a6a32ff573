"""`POST /v1/bulk`, `GET /v1/bulk/{id}`, `POST /v1/bulk/{id}/abort`, and its report.

A bulk body is a JSON array of targets, JSON lines or CSV (as `runctl bulk-cancel FILE`),
or a JSON object of discovery filters (`{"threads": [...], "status": "...",
"older_than": "30m"}`). Unlike the CLI, a body with any bad target is refused whole (422
listing the problems): nothing is queued.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from orchestrator.api.auth import Operator, Viewer
from orchestrator.api.bodies import targets_from_body
from orchestrator.api.context import Context, context
from orchestrator.core.access import ApiToken
from orchestrator.core.errors import InvalidInput
from orchestrator.service.discovery import listed_targets
from orchestrator.service.reports import csv_lines, json_lines
from orchestrator.service.targets import Problem, Target
from orchestrator.store.bulk import BulkRecord

router = APIRouter(prefix="/v1/bulk", tags=["bulk"])
PROBLEMS_SHOWN = 100


class Discovery(BaseModel):
    """Cancel the matching runs of listed threads (kinds that can list)."""

    model_config = ConfigDict(extra="forbid")

    threads: list[str] = Field(min_length=1)
    status: str | None = None  # comma-separated; default: the kind's live statuses
    older_than: str | None = None  # a duration: 90s, 30m, 2h


class BulkOptions(BaseModel):
    """The query parameters of `POST /v1/bulk`."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    reason: str = ""
    deadline_s: float | None = Field(default=None, gt=0)
    rate_limit_rps: float | None = Field(default=None, gt=0)
    dry_run: bool = False
    force: bool = False


@router.post("", responses={202: {"description": "queued"}, 200: {"description": "dry run"}})
async def start(
    request: Request, token: Operator, options: Annotated[BulkOptions, Query()]
) -> JSONResponse:
    """Start a bulk job (202 with its id), or with `dry_run` say what it would cancel."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    return await run_in_threadpool(_start, context(request), token, body, content_type, options)


def _start(
    ctx: Context, token: ApiToken, body: bytes, content_type: str, options: BulkOptions
) -> JSONResponse:
    targets, problems = _read(ctx, body, content_type, options.provider)
    shown = [{"where": p.where, "field": p.field, "rule": p.rule} for p in problems]
    if options.dry_run:
        runs = {(t.provider, t.thread_id, t.run_id) for t in targets}
        return JSONResponse({"dry_run": True, "runs": len(runs), "problems": shown})
    if problems:
        detail = [{"loc": ["body", p["where"], p["field"]], "msg": p["rule"], "type": "target"}
                  for p in shown[:PROBLEMS_SHOWN]]  # fmt: skip
        return JSONResponse({"detail": detail, "problems": len(problems)}, status_code=422)
    if not targets:
        raise InvalidInput("body", "names no run to cancel")
    bulk_id = ctx.producer.bulk_cancel(
        targets, on_problem=lambda _: None, reason=options.reason, requested_by=token.name,
        source=f"api ({len(targets)} targets)", deadline_s=options.deadline_s,
        rate_limit_rps=options.rate_limit_rps, provider=options.provider, force=options.force,
    )  # fmt: skip
    ctx.record(token, "bulk", bulk_id)
    record = ctx.producer.bulks.get(bulk_id)
    return JSONResponse(
        {"bulk_id": bulk_id, "record": None if record is None else record.model_dump(mode="json")},
        status_code=202,
    )


def _read(
    ctx: Context, body: bytes, content_type: str, provider: str | None
) -> tuple[list[Target], list[Problem]]:
    """Every target of the body, each checked against its connection, and the problems."""
    discovery = _discovery(body, content_type)
    if discovery is None:
        items: Iterator[Target | Problem] = targets_from_body(body, content_type)
    else:
        connection = ctx.producer.connections.resolve(provider)
        items = listed_targets(
            ctx.settings, connection, discovery.threads, status=discovery.status,
            older_than=discovery.older_than, client=ctx.client,
        )  # fmt: skip
    targets: list[Target] = []
    problems: list[Problem] = []
    for item in ctx.producer.checked(items, provider=provider):
        (problems if isinstance(item, Problem) else targets).append(item)  # type: ignore[arg-type]
    return targets, problems


def _discovery(body: bytes, content_type: str) -> Discovery | None:
    if content_type.split(";", maxsplit=1)[0].strip() != "application/json":
        return None
    try:
        data: Any = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        return None
    try:
        return Discovery.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(field, str(first["msg"])) from None


def _found(ctx: Context, bulk_id: str) -> BulkRecord:
    record = ctx.producer.bulks.get(bulk_id)
    if record is None:
        raise HTTPException(404, f"no bulk job {bulk_id} (ids expire with outcomes)")
    return record


@router.get("/{bulk_id}")
def status(bulk_id: str, request: Request, _: Viewer) -> BulkRecord:
    """Where the bulk job stands: counts per result."""
    return _found(context(request), bulk_id)


@router.post("/{bulk_id}/abort")
def abort(bulk_id: str, request: Request, token: Operator) -> BulkRecord:
    """Nothing more is sent for it; its jobs not done end `skipped`."""
    ctx = context(request)
    record = ctx.producer.bulks.abort(bulk_id)
    if record is None:
        raise HTTPException(404, f"no bulk job {bulk_id}")
    ctx.record(token, "abort", bulk_id)
    return record


@router.get("/{bulk_id}/report", response_class=StreamingResponse)
def report(
    bulk_id: str,
    request: Request,
    _: Viewer,
    format: Annotated[str | None, Query(pattern="^(csv|jsonl)$")] = None,
) -> StreamingResponse:
    """One row per run: CSV (the default, or Accept: text/csv) or JSON lines (?format=jsonl
    or Accept: application/x-ndjson)."""
    ctx = context(request)
    _found(ctx, bulk_id)
    accept = request.headers.get("accept", "")
    as_json = format == "jsonl" or (format is None and ("ndjson" in accept or "jsonl" in accept))
    if as_json:
        return StreamingResponse(json_lines(ctx.producer.bulks, bulk_id),
                                 media_type="application/x-ndjson")  # fmt: skip
    return StreamingResponse(csv_lines(ctx.producer.bulks, bulk_id), media_type="text/csv")

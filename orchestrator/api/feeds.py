"""Reading what happened: the outcome stream (Server-Sent Events, resumable), enforcement
events and alerts, dead letters, the audit and the API's request log."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

import redis.asyncio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from orchestrator.api.auth import Admin, Viewer
from orchestrator.api.context import context
from orchestrator.core.errors import InvalidInput
from orchestrator.store import keys
from orchestrator.store.audit import audit as run_audit
from orchestrator.store.deadletters import DeadLetters
from orchestrator.store.feeds import newest
from orchestrator.store.outcomes import read_entries_async, stream_tail_async

router = APIRouter(prefix="/v1", tags=["feeds"])
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
BLOCK_MS = 15_000  # a comment line at least this often keeps proxies from closing the feed
Count = Annotated[int, Query(ge=1, le=10_000)]


async def sse_events(
    client: redis.asyncio.Redis, after_id: str | None, *, block_ms: int = BLOCK_MS
) -> AsyncIterator[str]:
    """Each outcome after `after_id` (None: after the newest now) as one SSE event whose
    `id` is its stream id, forever; a `: keep-alive` comment whenever nothing came for
    `block_ms`. It waits on the event loop, holding no thread."""
    after_id = after_id or await stream_tail_async(client)
    while True:
        entries = await read_entries_async(client, after_id, block_ms=block_ms, count=500)
        if not entries:
            yield ": keep-alive\n\n"
            continue
        yield "".join(
            f"id: {entry_id}\nevent: outcome\ndata: {outcome.model_dump_json()}\n\n"
            for entry_id, outcome in entries
        )
        after_id = entries[-1][0]


@router.get("/outcomes/stream", response_class=StreamingResponse)
async def outcomes_stream(
    request: Request,
    _: Viewer,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(description="a stream id; 0-0 = from the start")] = None,
) -> StreamingResponse:
    """Outcomes as they are published (text/event-stream). Reconnecting with
    `Last-Event-ID` (or `?after=`) resumes right after that event: none is missed or
    repeated while the stream still holds it."""
    start = last_event_id or after
    if start is not None and not STREAM_ID.fullmatch(start):
        raise InvalidInput("Last-Event-ID", "must be a stream id like 1700000000000-0", start)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    client = context(request).async_client()
    return StreamingResponse(
        sse_events(client, start), media_type="text/event-stream", headers=headers
    )


@router.get("/events")
def events(request: Request, _: Viewer, count: Count = 100) -> list[dict[str, Any]]:
    """The newest enforcement actions (cancelled, reported, escalated, alerted), oldest first."""
    return newest(context(request).client, keys.EVENTS, count=count)


@router.get("/alerts")
def alerts(request: Request, _: Viewer, count: Count = 100) -> list[dict[str, Any]]:
    """The newest alerts (runs that stayed `cancelling` through every re-issue), oldest first."""
    return newest(context(request).client, keys.ALERTS, count=count)


@router.get("/dead-letters")
def dead_letters(request: Request, _: Admin, count: Count = 50) -> list[dict[str, Any]]:
    """Messages workers refused, newest first (admin: previews may hold message bodies)."""
    return DeadLetters(context(request).client).newest(count)


@router.get("/audit")
def audit(request: Request, _: Viewer, bulk_id: str | None = None) -> dict[str, Any]:
    """Accepted jobs with no outcome, or with more than one (`runctl audit`)."""
    report = run_audit(context(request).client, bulk_id=bulk_id)
    return dataclasses.asdict(report) | {"clean": report.clean}


@router.get("/audit/requests")
def requests_log(request: Request, _: Viewer, count: Count = 100) -> list[dict[str, Any]]:
    """The API's mutating requests, newest first: who (the token's name) did what."""
    return context(request).requests.newest(count)

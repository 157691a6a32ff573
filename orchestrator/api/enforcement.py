"""Enforcement controls (admin): have the enforcer watch a run, or list a thread's runs on
every pass (`runctl track`, `runctl track-thread`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from orchestrator.api.auth import AdminActing
from orchestrator.api.context import context

router = APIRouter(prefix="/v1", tags=["enforcement"])


class TrackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    thread_id: str | None = None  # None for a kind without threads
    run_id: str


class WatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str | None = None
    thread_id: str


class Added(BaseModel):
    added: bool  # False: it was already tracked (or watched)


@router.post("/tracked-runs")
def track(body: TrackRequest, request: Request, token: AdminActing) -> Added:
    """Have the enforcer watch a run from now on (its policies decide what happens)."""
    ctx = context(request)
    added = ctx.producer.track(body.thread_id, body.run_id, provider=body.provider)
    ctx.record(token, "track", f"{body.provider or ''}/{body.thread_id or ''}/{body.run_id}")
    return Added(added=added)


@router.post("/watched-threads")
def watch_thread(body: WatchRequest, request: Request, token: AdminActing) -> Added:
    """Have the enforcer list this thread's runs on every pass (kinds that can list)."""
    ctx = context(request)
    added = ctx.producer.track_thread(body.thread_id, provider=body.provider)
    ctx.record(token, "watch-thread", f"{body.provider or ''}/{body.thread_id}")
    return Added(added=added)

"""`POST /v1/cancels`, `GET /v1/cancels/{job_id}`, `GET /v1/runs/{provider}/{run_id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from orchestrator.api.auth import Operator, Viewer
from orchestrator.api.context import context
from orchestrator.store.lookup import JobView, RunView, job_view, run_view

router = APIRouter(prefix="/v1", tags=["jobs"])


class CancelRequest(BaseModel):
    """One run to cancel. Ids and fields are checked by the same rules as `runctl cancel`
    (the connection's kind's id rules, the job's bounds): a 422 names the field."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None  # a connection of runctl.toml; default openai
    thread_id: str | None = None  # None for a kind without threads
    run_id: str
    reason: str = ""
    deadline_s: float | None = None  # default RUNCTL_DEFAULT_DEADLINE_S
    force: bool = False  # replace a job in flight for this run (one lost before it ended)


class CancelAccepted(BaseModel):
    job_id: str
    duplicate: bool  # a job for this run was already in flight: its id


@router.post("/cancels", status_code=202)
def cancel(body: CancelRequest, request: Request, token: Operator) -> CancelAccepted:
    """Queue a cancel of one run; `requested_by` is the token's name."""
    ctx = context(request)
    fields: dict[str, Any] = {"reason": body.reason, "requested_by": token.name}
    if body.deadline_s is not None:
        fields["deadline_s"] = body.deadline_s
    submitted = ctx.producer.cancel(
        body.thread_id, body.run_id, provider=body.provider, force=body.force, **fields
    )
    ctx.record(token, "cancel", submitted.job_id)
    return CancelAccepted(job_id=submitted.job_id, duplicate=submitted.duplicate)


@router.get("/cancels/{job_id}")
def job(job_id: str, request: Request, _: Viewer) -> JobView:
    """Where the job is: its outcome, its progress in flight, or queued; 404 if unknown."""
    found = job_view(context(request).client, job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id} (never queued, or expired with outcomes)")
    return found


@router.get("/runs/{provider}/{run_id}")
def run(
    provider: str,
    run_id: str,
    request: Request,
    _: Viewer,
    thread_id: Annotated[str | None, Query()] = None,
) -> RunView:
    """The run's job in flight and its past outcomes (newest first)."""
    ctx = context(request)
    ctx.producer.connections.check_ids(provider, thread_id, run_id)
    limit = ctx.settings.api_run_scan_limit
    return run_view(ctx.client, provider, thread_id, run_id, scan_limit=limit)

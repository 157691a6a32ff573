"""`/healthz` (the process answers), `/readyz` (Redis answers and a worker holds a lease),
`/v1/fleet`, the fleet's Prometheus gauges at `/metrics`, and the OpenAPI document."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.auth import Viewer
from orchestrator.api.context import context
from orchestrator.store.fleet import Fleet, read_fleet

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no token needed)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, _: Viewer) -> JSONResponse:
    """200 when Redis answers and at least one worker's lease is alive (a worker renewed it
    within RUNCTL_WORKER_LEASE_S); else 503 saying which."""
    ctx = context(request)
    try:
        fleet = read_fleet(ctx.client, queue_name=ctx.settings.queue_name, now_s=ctx.clock())
    except redis.RedisError as exc:
        return JSONResponse({"ready": False, "redis": False, "why": type(exc).__name__}, 503)
    ready = fleet.workers_alive > 0
    body = {"ready": ready, "redis": True, "workers_alive": fleet.workers_alive}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Viewer) -> JSONResponse:
    """The OpenAPI document (any role)."""
    return JSONResponse(request.app.openapi())


@router.get("/v1/fleet")
def fleet(request: Request, _: Viewer) -> Fleet:
    """Workers alive, jobs in flight, the queue's depth and its oldest message's age."""
    ctx = context(request)
    return read_fleet(ctx.client, queue_name=ctx.settings.queue_name, now_s=ctx.clock())


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _: Viewer) -> Response:
    """The fleet's gauges, read from Redis at each scrape (workers serve their own counters
    on RUNCTL_METRICS_PORT). A plain `def`: the Redis read runs in the thread pool."""
    body = generate_latest(context(request).fleet_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

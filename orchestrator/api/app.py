"""The ASGI app of `runctl serve`: the HTTP API under /v1, health, and the dashboard at /.

`create_app` takes the producer (and so the queue) from its caller: this package never
imports Celery; `orchestrator/cli/serve.py` wires the broker's queue, as `runctl cancel`
does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orchestrator.api import bulk, dashboard, enforcement, feeds, health, jobs
from orchestrator.api.context import Context, load_tokens
from orchestrator.core.access import Tokens
from orchestrator.core.errors import InvalidInput, RedisUnavailable
from orchestrator.core.settings import Settings
from orchestrator.service.producer import Producer

VERSION = "1"


def create_app(
    settings: Settings,
    *,
    producer: Producer,
    tokens: Tokens | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app over `producer` (its queue and Redis client); `tokens` default to those of
    runctl.toml and RUNCTL_API_TOKENS_JSON."""
    app = FastAPI(
        title="runctl", version=VERSION, docs_url=None, redoc_url=None,  # those load a CDN
        openapi_url=None,  # served by `health.openapi`, behind a token like every route
        max_body_size=settings.api_max_body_bytes,  # 413 beyond (Starlette's body limit)
        lifespan=_lifespan,
        description="Cancel runs of LLM agent platforms, one or in bulk, and follow them.",
    )  # fmt: skip
    known = load_tokens(settings) if tokens is None else tokens
    app.state.context = Context(settings=settings, producer=producer, tokens=known, clock=clock)
    routers = (jobs, bulk, feeds, enforcement, health, dashboard)
    for module in routers:
        app.include_router(module.router)
    app.mount("/static", dashboard.static_files(), name="static")
    app.add_exception_handler(InvalidInput, _invalid_input)  # type: ignore[arg-type]
    app.add_exception_handler(RedisUnavailable, _redis_unavailable)  # type: ignore[arg-type]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.context.aclose()


def _invalid_input(_: Request, exc: InvalidInput) -> JSONResponse:
    """422 in FastAPI's own shape, naming the field and the rule (the CLI's exit 2)."""
    detail = [{"loc": ["body", exc.field], "msg": exc.rule, "type": "invalid_input"}]
    return JSONResponse({"detail": detail}, status_code=422)


def _redis_unavailable(_: Request, exc: RedisUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)

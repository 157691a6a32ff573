"""The dashboard at `/`: server-rendered pages (Jinja2), a little vanilla JS, no CDN and
no build step; everything it shows comes from the same store reads as the API.

Sign-in takes a token once and sets an HttpOnly, SameSite=Strict session cookie carrying
the token's name and expiry, signed (`auth.session_value`), never the token. The live
parts (the outcome feed, the bulk bars, the fleet) are `dashboard.js` calling the /v1
routes with that cookie. A viewer's pages have no button that changes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from orchestrator.api.auth import SESSION_COOKIE, identify, session_value
from orchestrator.api.context import context
from orchestrator.core.access import ApiToken, Role
from orchestrator.core.errors import InvalidInput
from orchestrator.store import keys
from orchestrator.store.deadletters import DeadLetters
from orchestrator.store.feeds import newest
from orchestrator.store.fleet import read_fleet
from orchestrator.store.lookup import job_view, run_view

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
BULK_SHOWN = 20


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _page(request: Request, name: str, token: ApiToken, **data: Any) -> HTMLResponse:
    data |= {"token": token, "can_act": token.role >= Role.OPERATOR,
             "is_admin": token.role >= Role.ADMIN}  # fmt: skip
    return templates.TemplateResponse(request, name, data)


def _signed_in(request: Request, least: Role = Role.VIEWER) -> ApiToken | Response:
    token = identify(request)
    if token is None:
        return RedirectResponse("/signin", status_code=303)
    if token.role < least:
        return HTMLResponse(f"this page needs the {least.label} role", status_code=403)
    return token


@router.get("/signin")
def signin_form(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "signin.html", {"error": ""})


@router.post("/signin")
async def signin(request: Request) -> Response:
    """A token from the form becomes a session cookie (its name, signed), never stored."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    ctx = context(request)
    token = ctx.tokens.authenticate(form.get("token", [""])[0].strip())
    if token is None:
        page = {"error": "unknown token"}
        return templates.TemplateResponse(request, "signin.html", page, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_value(ctx, token), max_age=ctx.settings.api_session_ttl_s,
        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def overview(request: Request) -> Response:
    """The fleet, the live outcome feed, and the newest bulk jobs with their bars."""
    token = _signed_in(request)
    if isinstance(token, Response):
        return token
    ctx = context(request)
    fleet = read_fleet(ctx.client, queue_name=ctx.settings.queue_name, now_s=ctx.clock())
    bulks = ctx.producer.bulks.recent(BULK_SHOWN)
    return _page(request, "overview.html", token, fleet=fleet, bulks=bulks)


@router.get("/lookup")
def lookup(
    request: Request,
    job_id: str = "",
    provider: str = "",
    thread_id: str = "",
    run_id: str = "",
) -> Response:
    """A job by id, or a run by its connection and ids."""
    token = _signed_in(request)
    if isinstance(token, Response):
        return token
    ctx = context(request)
    found: dict[str, Any] = {"job": None, "run": None, "error": "", "asked": bool(job_id or run_id)}
    try:
        if job_id:
            found["job"] = job_view(ctx.client, job_id.strip())
        elif run_id:
            name = ctx.producer.connections.resolve(provider or None).name
            ctx.producer.connections.check_ids(name, thread_id or None, run_id.strip())
            found["run"] = run_view(ctx.client, name, thread_id or None, run_id.strip(),
                                    scan_limit=ctx.settings.api_run_scan_limit)  # fmt: skip
    except InvalidInput as exc:
        found["error"] = str(exc)
    query = {"job_id": job_id, "provider": provider, "thread_id": thread_id, "run_id": run_id}
    return _page(request, "lookup.html", token, query=query, **found)


@router.get("/events")
def events(request: Request) -> Response:
    """Enforcement events and alerts, newest last."""
    token = _signed_in(request)
    if isinstance(token, Response):
        return token
    client = context(request).client
    return _page(request, "events.html", token, events=newest(client, keys.EVENTS, count=100),
                 alerts=newest(client, keys.ALERTS, count=100))  # fmt: skip


@router.get("/dead-letters")
def dead_letters(request: Request) -> Response:
    """Messages workers refused (admin)."""
    token = _signed_in(request, Role.ADMIN)
    if isinstance(token, Response):
        return token
    letters = DeadLetters(context(request).client).newest(100)
    return _page(request, "dead_letters.html", token, letters=letters)

"""Who is asking, and may they: bearer tokens, the dashboard's session cookie, roles, and
the per-token rate limit of mutating requests.

No token, or an unknown one: 401. A known token without the role: 403. A session cookie
carries the token's *name*, a digest of its digest and an expiry, signed with the
server's secret (itsdangerous); the token is looked up again on every request, so a token
removed or rotated in the configuration ends its sessions.
"""

# No `from __future__ import annotations` here: FastAPI reads the dependencies' annotations
# at run time, and those in the closures name their local `role`.
import hashlib
import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from orchestrator.api.context import Context, context
from orchestrator.core.access import ApiToken, Role

SESSION_COOKIE = "runctl_session"
_SALT = "runctl-dashboard-session"


def _serializer(ctx: Context) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.session_secret, salt=_SALT)


def _version(token: ApiToken) -> str:
    """Which token of that name signed in: a rotated token ends the old one's sessions."""
    return hashlib.sha256(token.sha256.encode()).hexdigest()[:16]


def session_value(ctx: Context, token: ApiToken) -> str:
    """The signed cookie value for a signed-in token: its name, never the token."""
    return _serializer(ctx).dumps({"name": token.name, "v": _version(token)})


def session_token(ctx: Context, value: str) -> ApiToken | None:
    try:
        data = _serializer(ctx).loads(value, max_age=ctx.settings.api_session_ttl_s)
    except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
        return None
    if not isinstance(data, dict):
        return None
    token = ctx.tokens.named(str(data.get("name", "")))
    return token if token is not None and data.get("v") == _version(token) else None


def identify(request: Request) -> ApiToken | None:
    """The token behind `Authorization: Bearer T`, else behind the session cookie."""
    ctx = context(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return ctx.tokens.authenticate(value.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return None if cookie is None else session_token(ctx, cookie)


def caller(request: Request) -> ApiToken:
    token = identify(request)
    if token is None:
        raise HTTPException(
            401, "a valid token is required: Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    return token


def require(role: Role) -> Callable[[ApiToken], ApiToken]:
    """A dependency: the caller, if their role is at least `role` (else 403)."""

    def allowed(token: Annotated[ApiToken, Depends(caller)]) -> ApiToken:
        if token.role < role:
            raise HTTPException(403, f"this needs the {role.label} role")
        return token

    return allowed


def rate_limited(role: Role) -> Callable[[Request, ApiToken], ApiToken]:
    """A dependency for mutating routes: `require(role)`, then one turn of the token's
    rate limit (429 with Retry-After when there is none now)."""

    def allowed(request: Request, token: Annotated[ApiToken, Depends(require(role))]) -> ApiToken:
        turn = context(request).limiter(token).reserve(bulk_id=None, max_wait_s=0.0)
        if not turn.in_time:
            raise HTTPException(
                429, "too many requests for this token; retry later",
                headers={"Retry-After": str(max(1, math.ceil(turn.wait_s)))},
            )  # fmt: skip
        return token

    return allowed


Viewer = Annotated[ApiToken, Depends(require(Role.VIEWER))]
Admin = Annotated[ApiToken, Depends(require(Role.ADMIN))]
Operator = Annotated[ApiToken, Depends(rate_limited(Role.OPERATOR))]
"""A mutating route's caller: an operator (or admin) with a turn of its rate limit."""
AdminActing = Annotated[ApiToken, Depends(rate_limited(Role.ADMIN))]
"""An enforcement control's caller: an admin with a turn of its rate limit."""

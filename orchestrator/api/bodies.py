"""Request bodies: the size limit (413), and a bulk job's targets from a JSON array, JSON
lines or CSV, read with the CLI's own target rules (`service/targets.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.core.errors import InvalidInput
from orchestrator.service.targets import Problem, Target, check_target, read_targets


class BodyLimit:
    """Refuse a body over `max_bytes` with 413: at once when Content-Length says so, else
    as soon as the chunks read pass it (the route reading the body gets the 413)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"the body must be at most {self.max_bytes} bytes (RUNCTL_API_MAX_BODY_BYTES)"

    def _too_large(self) -> JSONResponse:
        return JSONResponse({"detail": self._detail()}, status_code=413)


def targets_from_body(body: bytes, content_type: str) -> Iterator[Target | Problem]:
    """A JSON array of targets (`application/json`), else JSON lines or CSV (the first
    line decides, as for `runctl bulk-cancel FILE`)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body", "must be UTF-8 text") from None
    if content_type.split(";", maxsplit=1)[0].strip() == "application/json":
        return _json_array(text)
    return read_targets(text.splitlines())


def _json_array(text: str) -> Iterator[Target | Problem]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(items, list):
        raise InvalidInput("body", "must be a JSON array of {thread_id, run_id} objects")
    for n, item in enumerate(items):
        where = f"item {n}"
        if not isinstance(item, dict):
            yield Problem(where, "item", "must be a JSON object")
            continue
        yield check_target(item, where)

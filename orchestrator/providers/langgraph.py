"""The `langgraph` kind: LangGraph Platform, LangSmith Deployments and self-hosted
`langgraph-api` servers (facts measured against langgraph-api 0.16).

- Cancel is `POST /threads/{t}/runs/{r}/cancel?wait=0&action=interrupt|rollback`, answered
  202 with an empty body; the run then reads `interrupted` (or, after a rollback, is gone:
  a GET answers 404, which is the rollback succeeding).
- A cancel of a run that is no longer pending or running answers 404, as does one of a run
  that never existed: only a look tells `already_terminal` from `not_found`.
- Thread and run ids are UUIDs (anything else answers 422). Errors are `{"detail": "..."}`.
- `GET /threads/{t}/runs` is a bare JSON list, paged by `limit` and `offset`.
- The key, when the server wants one, travels in `x-api-key`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx

from orchestrator.core.connections import Auth, CancelAction, Connection
from orchestrator.core.models import Kind, Run
from orchestrator.providers import _http
from orchestrator.providers.base import (
    UUID_ID,
    BuildOptions,
    Dialect,
    KindSpec,
    ProviderError,
    ProviderReply,
    RunPage,
)
from orchestrator.providers.credentials import Access


class RunStatus(StrEnum):
    """A LangGraph run's status."""

    PENDING = "pending"  # queued behind the thread's running run; cancellable
    RUNNING = "running"
    ERROR = "error"
    SUCCESS = "success"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # what our cancel (action=interrupt) leads to


ROLLED_BACK = "rolled_back"
"""The final_status we report when our rollback deleted the run (the API has no word for a
run that no longer exists)."""

DIALECT = Dialect(
    terminal=frozenset(
        {RunStatus.ERROR, RunStatus.SUCCESS, RunStatus.TIMEOUT, RunStatus.INTERRUPTED}
    ),
    cancelled=RunStatus.INTERRUPTED,
    cancelling=None,
    live=frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    look_after_missing_cancel=True,
)
ROLLBACK_DIALECT = replace(DIALECT, vanished=ROLLED_BACK)


class LangGraphProvider:
    """Speaks langgraph-api's thread runs to `base_url`."""

    def __init__(
        self, *, base_url: str, access: Access, options: BuildOptions, action: CancelAction
    ) -> None:
        self.dialect = ROLLBACK_DIALECT if action is CancelAction.ROLLBACK else DIALECT
        self._action = action
        self._http = options.http_client(base_url, access)

    def cancel(self, thread_id: str | None, run_id: str) -> ProviderReply:
        params = {"wait": "0", "action": self._action.value}
        response = self._send("POST", f"{_run_path(thread_id, run_id)}/cancel", params=params)
        body = response.content.strip()
        # 202 with no body (wait=0); a `wait=1` server answers 200 `{}`: neither is a run.
        run = _parse_run(response) if body and body != b"{}" else None
        return ProviderReply(run, _http.retry_after_s(response.headers))

    def retrieve(self, thread_id: str | None, run_id: str) -> ProviderReply:
        return ProviderReply(_parse_run(self._send("GET", _run_path(thread_id, run_id))))

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        offset = int(after) if after and after.isdigit() else 0
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        response = self._send("GET", f"threads/{quote(thread_id, safe='')}/runs", params=params)
        items = response.json()
        if not isinstance(items, list):
            raise ProviderError("a run list that is not a list", should_retry=True)
        runs = tuple(_run(item) for item in items if isinstance(item, dict))
        # The cursor is the next offset: opaque to discovery, which only hands it back.
        return RunPage(runs=runs, last_id=str(offset + len(items)), has_more=len(items) >= limit)

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self._http.send(method, path, params=params, to_error=error_from_response)


def error_from_response(response: httpx.Response) -> ProviderError:
    """`{"detail": "..."}` (a string, or FastAPI's list of field errors) as a ProviderError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0].get("msg")
    message = str(detail or response.reason_phrase or "HTTP error")[:500]
    return ProviderError(
        message,
        http_status=response.status_code,
        retry_after_s=_http.retry_after_s(response.headers),
        should_retry=_http.should_retry(response.headers),
    )


def _parse_run(response: httpx.Response) -> Run:
    return _run(_http.json_object(response, required=("run_id", "status"), what="run"))


def _run(body: dict[str, Any]) -> Run:
    """A LangGraph run in the shared `Run` shape (timestamps as epoch seconds)."""
    return Run(
        id=str(body.get("run_id")),
        thread_id=_http.str_or_none(body.get("thread_id")),
        status=str(body.get("status")),
        assistant_id=_http.str_or_none(body.get("assistant_id")),
        created_at=_epoch_s(body.get("created_at")),
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
    )


def _epoch_s(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _run_path(thread_id: str | None, run_id: str) -> str:
    if thread_id is None:
        raise ProviderError("a LangGraph run needs its thread id", http_status=400)
    return f"threads/{quote(thread_id, safe='')}/runs/{quote(run_id, safe='')}"


def _build(connection: Connection, access: Access, options: BuildOptions) -> LangGraphProvider:
    return LangGraphProvider(
        base_url=connection.base_url,
        access=access,
        options=options,
        action=connection.cancel_action or CancelAction.INTERRUPT,
    )


SPEC = KindSpec(
    kind=Kind.LANGGRAPH,
    dialect=DIALECT,
    build=_build,
    key_headers=lambda key: {"x-api-key": key},
    auths=frozenset({Auth.KEY, Auth.NONE}),
    default_auth=Auth.NONE,  # a self-hosted server may want no key
    thread_id=UUID_ID,
    run_id=UUID_ID,
    cancel_actions=True,
)

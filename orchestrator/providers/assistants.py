"""The Assistants v2 family (OpenAI and compatible servers; the Azure kinds reuse it with
their own path, query and credential), over one pooled httpx client; and the
`openai-assistants` kind."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.models import Kind, Run
from orchestrator.providers import _http
from orchestrator.providers._http import retry_after_s
from orchestrator.providers.base import (
    ASSISTANTS_DIALECT,
    QUOTA_CODES,
    BuildOptions,
    Dialect,
    KindSpec,
    ProviderError,
    ProviderReply,
    RunPage,
    refused_status,
)
from orchestrator.providers.credentials import Access

__all__ = ["SPEC", "AssistantsProvider", "error_from_response", "retry_after_s"]

POLL_HINT_HEADER = "openai-poll-after-ms"


class AssistantsProvider:
    """Speaks `/threads/{thread_id}/runs/{run_id}[/cancel]` to `base_url`, sending
    `params` (Azure's `api-version`) with every request."""

    def __init__(
        self,
        *,
        base_url: str,
        access: Access,
        options: BuildOptions,
        dialect: Dialect = ASSISTANTS_DIALECT,
        params: dict[str, str] | None = None,
    ) -> None:
        self.dialect = dialect
        self._http = options.http_client(
            base_url, access, headers={"OpenAI-Beta": "assistants=v2"}, params=params
        )

    def cancel(self, thread_id: str | None, run_id: str) -> ProviderReply:
        return self._reply(self._send("POST", f"{_run_path(thread_id, run_id)}/cancel"))

    def retrieve(self, thread_id: str | None, run_id: str) -> ProviderReply:
        return self._reply(self._send("GET", _run_path(thread_id, run_id)))

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        params: dict[str, Any] = {"limit": limit, "order": "desc"}
        if after is not None:
            params["after"] = after
        body = self._send("GET", f"threads/{_segment(thread_id)}/runs", params=params).json()
        runs = tuple(Run.model_validate(item) for item in body.get("data", []))
        return RunPage(runs=runs, last_id=body.get("last_id"), has_more=bool(body.get("has_more")))

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self._http.send(method, path, params=params, to_error=error_from_response)

    @staticmethod
    def _reply(response: httpx.Response) -> ProviderReply:
        return ProviderReply(
            _parse_run(response), _http.header_ms_as_s(response.headers, POLL_HINT_HEADER)
        )


def error_from_response(response: httpx.Response) -> ProviderError:
    """Map an error answer to a ProviderError, reading the protocol's error body tolerantly."""
    error = _http.error_body(response)
    message = str(error.get("message") or response.reason_phrase or "HTTP error")[:500]
    code = _http.str_or_none(error.get("code"))
    return ProviderError(
        message,
        http_status=response.status_code,
        type=_http.str_or_none(error.get("type")),
        code=code,
        retry_after_s=retry_after_s(response.headers),
        should_retry=_http.should_retry(response.headers),
        quota_exhausted=code in QUOTA_CODES,
        refused_status=refused_status(response.status_code, message),
    )


def _parse_run(response: httpx.Response) -> Run:
    """The Run in a success answer; an unreadable one is a transient fault (a proxy's page)."""
    try:
        return Run.model_validate_json(response.content)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "body"
        raise ProviderError(
            f"unreadable Run in a {response.status_code} answer (at {where})",
            http_status=response.status_code,
            should_retry=True,
        ) from None


def _segment(value: str) -> str:
    # Ids were validated before queueing; encode anyway so a path can never be bent.
    return quote(value, safe="")


def _run_path(thread_id: str | None, run_id: str) -> str:
    if thread_id is None:
        raise ProviderError("an Assistants run needs its thread id", http_status=400)
    return f"threads/{_segment(thread_id)}/runs/{_segment(run_id)}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def openai_access(connection: Connection, access: Access) -> Access:
    """The credential plus OpenAI's organization and project headers, where configured."""
    headers = dict(access.headers)
    if connection.org_id:
        headers["OpenAI-Organization"] = connection.org_id
    if connection.project_id:
        headers["OpenAI-Project"] = connection.project_id
    return Access(headers, access.auth)


def _build(connection: Connection, access: Access, options: BuildOptions) -> AssistantsProvider:
    return AssistantsProvider(
        base_url=connection.base_url, access=openai_access(connection, access), options=options
    )


SPEC = KindSpec(
    kind=Kind.OPENAI_ASSISTANTS,
    dialect=ASSISTANTS_DIALECT,
    build=_build,
    key_headers=bearer,
    auths=frozenset({Auth.KEY, Auth.NONE}),
)

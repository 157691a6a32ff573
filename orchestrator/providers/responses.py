"""The `openai-responses` kind: OpenAI Responses created with `background: true`.

A target is the response id alone (no thread). `POST /responses/{id}/cancel` is idempotent
and answers the Response (a finished one as it is); only background responses can be
cancelled (others are refused with a 4xx: `rejected`). The API cannot list responses, so
there is no discovery and no watched thread for this kind.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.models import Kind, Run, Usage
from orchestrator.providers import _http
from orchestrator.providers.assistants import bearer, error_from_response, openai_access
from orchestrator.providers.base import (
    BuildOptions,
    Dialect,
    KindSpec,
    ProviderError,
    ProviderReply,
    RunPage,
)
from orchestrator.providers.credentials import Access

POLL_HINT_HEADER = "openai-poll-after-ms"

DIALECT = Dialect(
    terminal=frozenset({"completed", "failed", "cancelled", "incomplete"}),
    cancelled="cancelled",
    cancelling=None,
    live=frozenset({"queued", "in_progress"}),
)


class ResponsesProvider:
    """Speaks `/responses/{id}[/cancel]` to `base_url`."""

    dialect = DIALECT

    def __init__(self, *, base_url: str, access: Access, options: BuildOptions) -> None:
        self._http = options.http_client(base_url, access)

    def cancel(self, thread_id: str | None, run_id: str) -> ProviderReply:
        return self._reply(self._send("POST", f"responses/{quote(run_id, safe='')}/cancel"))

    def retrieve(self, thread_id: str | None, run_id: str) -> ProviderReply:
        return self._reply(self._send("GET", f"responses/{quote(run_id, safe='')}"))

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        raise ProviderError("the Responses API cannot list responses", http_status=400)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str) -> httpx.Response:
        return self._http.send(method, path, to_error=error_from_response)

    @staticmethod
    def _reply(response: httpx.Response) -> ProviderReply:
        return ProviderReply(
            _parse(response), _http.header_ms_as_s(response.headers, POLL_HINT_HEADER)
        )


def _parse(response: httpx.Response) -> Run:
    body = _http.json_object(response, required=("id", "status"), what="Response")
    usage: Any = body.get("usage")
    return Run(
        id=str(body["id"]),
        status=str(body["status"]),
        model=_http.str_or_none(body.get("model")),
        created_at=body.get("created_at")
        if isinstance(body.get("created_at"), int | float)
        else None,
        completed_at=body.get("completed_at")
        if isinstance(body.get("completed_at"), int | float)
        else None,
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
        usage=Usage(
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            total_tokens=usage.get("total_tokens"),
        )
        if isinstance(usage, dict)
        else None,
    )


def _build(connection: Connection, access: Access, options: BuildOptions) -> ResponsesProvider:
    return ResponsesProvider(
        base_url=connection.base_url, access=openai_access(connection, access), options=options
    )


SPEC = KindSpec(
    kind=Kind.OPENAI_RESPONSES,
    dialect=DIALECT,
    build=_build,
    key_headers=bearer,
    auths=frozenset({Auth.KEY, Auth.NONE}),
    has_threads=False,
    can_list=False,
)

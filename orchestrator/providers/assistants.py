"""The Assistants v2 dialect (OpenAI and compatible servers), over one pooled httpx client."""

from __future__ import annotations

import email.utils
import itertools
import math
import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from orchestrator.models import Run
from orchestrator.providers.base import ProviderError, ProviderReply, ProviderUnreachable, RunPage
from orchestrator.settings import Settings

USER_AGENT = "runctl/0.1"
CONNECTIONS_PER_SHARD = 32


class AssistantsProvider:
    """Speaks `/threads/{thread_id}/runs/{run_id}[/cancel]` to the configured base URL."""

    def __init__(self, settings: Settings, *, max_connections: int = 100) -> None:
        if settings.api_key is None:
            from orchestrator.errors import ConfigurationError

            raise ConfigurationError("OPENAI_API_KEY is not set for this worker")
        headers = {
            "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
            "OpenAI-Beta": "assistants=v2",
            "User-Agent": USER_AGENT,
        }
        if settings.org_id:
            headers["OpenAI-Organization"] = settings.org_id
        if settings.project_id:
            headers["OpenAI-Project"] = settings.project_id
        # httpcore rescans every pooled connection on each request and each response close
        # (quadratic in the pool's size), which at 1000 connections costs more CPU than
        # everything else a job does. Shards of a few dozen connections keep that scan small.
        shard_count = max(1, math.ceil(max_connections / CONNECTIONS_PER_SHARD))
        tls = httpx.create_ssl_context()  # one for all shards: each costs a CA bundle load
        per_shard = math.ceil(max_connections / shard_count)
        self._clients = [
            httpx.Client(
                base_url=settings.base_url.rstrip("/") + "/",
                headers=headers,
                verify=tls,
                timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
            )
            for _ in range(shard_count)
        ]
        self._turn = itertools.count()

    def cancel(self, thread_id: str, run_id: str) -> ProviderReply:
        response = self._send("POST", f"{_run_path(thread_id, run_id)}/cancel")
        return ProviderReply(_parse_run(response), _poll_after_s(response))

    def retrieve(self, thread_id: str, run_id: str) -> ProviderReply:
        response = self._send("GET", _run_path(thread_id, run_id))
        return ProviderReply(_parse_run(response), _poll_after_s(response))

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        params: dict[str, str | int] = {"limit": limit, "order": "desc"}
        if after is not None:
            params["after"] = after
        body = self._send("GET", f"threads/{_segment(thread_id)}/runs", params=params).json()
        runs = tuple(Run.model_validate(item) for item in body.get("data", []))
        return RunPage(runs=runs, last_id=body.get("last_id"), has_more=bool(body.get("has_more")))

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _send(
        self, method: str, path: str, *, params: dict[str, str | int] | None = None
    ) -> httpx.Response:
        try:
            client = self._clients[next(self._turn) % len(self._clients)]
            response = client.request(method, path, params=params)
        except httpx.TransportError as exc:
            # Only the class name: an exception's text can quote a header, and so the key.
            raise ProviderUnreachable(type(exc).__name__) from None
        if response.is_success:
            return response
        raise error_from_response(response)


def error_from_response(response: httpx.Response) -> ProviderError:
    """Map an error answer to a ProviderError, reading the protocol's error body tolerantly."""
    error: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
    except ValueError:
        pass
    message = str(error.get("message") or response.reason_phrase or "HTTP error")
    return ProviderError(
        message[:500],
        http_status=response.status_code,
        type=_str_or_none(error.get("type")),
        code=_str_or_none(error.get("code")),
        retry_after_s=retry_after_s(response.headers),
        should_retry=_should_retry(response.headers),
    )


def retry_after_s(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """The delay the server asked for: `retry-after-ms`, else `retry-after` (s or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


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


def _poll_after_s(response: httpx.Response) -> float | None:
    raw = response.headers.get("openai-poll-after-ms")
    try:
        return None if raw is None else max(0.0, float(raw) / 1000.0)
    except ValueError:
        return None


def _should_retry(headers: httpx.Headers) -> bool | None:
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _segment(value: str) -> str:
    # Ids were validated before queueing; encode anyway so a path can never be bent.
    return quote(value, safe="")


def _run_path(thread_id: str, run_id: str) -> str:
    return f"threads/{_segment(thread_id)}/runs/{_segment(run_id)}"

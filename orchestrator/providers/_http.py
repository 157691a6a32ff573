"""What every HTTP dialect shares: a sharded pooled client, the server's retry and poll
hints, and the mapping of an error answer to a `ProviderError`."""

from __future__ import annotations

import email.utils
import itertools
import math
import time
from collections.abc import Callable
from typing import Any, cast

import httpx

from orchestrator.core.provider import ProviderError, ProviderUnreachable

RequestObserver = Callable[[str, int | None, float], None]
"""Told of each request: its method, the answer's status (None: no answer), seconds taken."""

USER_AGENT = "runctl/0.1"
CONNECTIONS_PER_SHARD = 32


class ShardedClient:
    """Pooled httpx clients used in turn, each holding a few dozen connections.

    httpcore rescans every pooled connection on each request and each response close
    (quadratic in the pool's size), which at 1000 connections costs more CPU than everything
    else a job does. Shards of a few dozen connections keep that scan small.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: dict[str, str],
        max_connections: int,
        read_timeout_s: float,
        connect_timeout_s: float,
        params: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        observe: RequestObserver | None = None,
    ) -> None:
        self._observe = observe
        shard_count = max(1, math.ceil(max_connections / CONNECTIONS_PER_SHARD))
        tls = httpx.create_ssl_context()  # one for all shards: each costs a CA bundle load
        per_shard = math.ceil(max_connections / shard_count)
        self._clients = [
            httpx.Client(
                base_url=base_url.rstrip("/") + "/",
                headers={"User-Agent": USER_AGENT, **headers},
                params=params,
                auth=auth,
                verify=tls,
                timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
            )
            for _ in range(shard_count)
        ]
        self._turn = itertools.count()

    def send(
        self,
        method: str,
        path: str,
        *,
        to_error: Callable[[httpx.Response], ProviderError],
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One request; a non-2xx answer raises `to_error(response)`, no answer raises
        ProviderUnreachable (with only the exception's class name: never a header)."""
        client = self._clients[next(self._turn) % len(self._clients)]
        started_s = time.perf_counter()
        try:
            response = client.request(method, path, params=params)
        except httpx.TransportError as exc:
            if self._observe is not None:
                self._observe(method, None, time.perf_counter() - started_s)
            raise ProviderUnreachable(type(exc).__name__) from None
        if self._observe is not None:
            self._observe(method, response.status_code, time.perf_counter() - started_s)
        if response.is_success:
            return response
        raise to_error(response)

    def close(self) -> None:
        for client in self._clients:
            client.close()


def retry_after_s(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """The delay the server asked for: `retry-after-ms` (or Azure's `x-ms-retry-after-ms`),
    else `retry-after` (seconds or an HTTP date)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw_ms = headers.get(name)
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


def header_ms_as_s(headers: httpx.Headers, name: str) -> float | None:
    """A header holding milliseconds (a poll hint), as seconds; None when absent or odd."""
    raw = headers.get(name)
    try:
        return None if raw is None else max(0.0, float(raw) / 1000.0)
    except ValueError:
        return None


def should_retry(headers: httpx.Headers) -> bool | None:
    """The server's own verdict (`x-should-retry`), when it gives one."""
    value = headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The `{"error": {...}}` object of an error answer, or {} when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return cast(dict[str, Any], error) if isinstance(error, dict) else {}


def str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def json_object(
    response: httpx.Response, *, required: tuple[str, ...], what: str
) -> dict[str, Any]:
    """The answer's JSON object; one that is not an object with the `required` keys (a
    proxy's HTML page, a truncated body) is a transient fault, retried."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or any(key not in body for key in required):
        raise ProviderError(
            f"unreadable {what} in a {response.status_code} answer",
            http_status=response.status_code,
            should_retry=True,
        )
    return body

"""One HTTP attempt to a target, and what it means: delivered, worth another attempt, or
failed for good.

Every request goes to a checked, pinned address (`targets.pin`), follows no redirect (a
3xx fails for good, naming where it pointed), has a timeout, and reads at most
`max_response_bytes` of the answer. What is worth another attempt is decided here and only
here: connection errors, timeouts, 408, 425, 429 and 5xx. The URL is never logged or
reported (a Slack URL is itself a secret); the host is.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from orchestrator.notify.schedule import parse_retry_after_s
from orchestrator.notify.targets import Resolver, UnsafeTarget, pin, system_resolve

RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to. `error` says why it did not land (no secret in it)."""

    delivered: bool
    retry: bool = False
    status: int | None = None
    retry_after_s: float | None = None
    error: str = ""


def classify(status: int, retry_after: str | None, location: str | None) -> Attempt:
    """Pure: the meaning of an HTTP answer."""
    if 200 <= status < 300:
        return Attempt(delivered=True, status=status)
    if 300 <= status < 400:
        where = urlsplit(location).hostname if location else None
        error = f"redirect refused (HTTP {status} to {where or 'nowhere'})"
        return Attempt(delivered=False, status=status, error=error)
    if status in RETRYABLE_STATUSES or status >= 500:
        asked_s = parse_retry_after_s(retry_after)
        error = f"HTTP {status}"
        return Attempt(
            delivered=False, retry=True, status=status, retry_after_s=asked_s, error=error
        )
    return Attempt(delivered=False, status=status, error=f"HTTP {status} (not retried)")


class Sender:
    """Sends requests under the safety rules; thread-safe. One connection pool per
    subscription, so that a TLS connection made for one host is never reused for another
    name that resolved to the same address."""

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str],
        timeout_s: float,
        max_response_bytes: int,
        resolve: Resolver = system_resolve,
        clock: Callable[[], float] = time.monotonic,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`verify`: the TLS trust (the system's by default; tests pass their own CA)."""
        self._allow_hosts = frozenset(allow_hosts)
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._resolve = resolve
        self._clock = clock
        self._verify = verify
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def post(self, pool: str, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        """POST `body` to `url` (pool: the subscription's name)."""
        try:
            target = pin(url, self._allow_hosts, self._resolve)
        except UnsafeTarget as exc:
            return Attempt(delivered=False, error=f"unsafe target: {exc}")
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        started = self._clock()
        try:
            with self._client(pool).stream(
                "POST", target.url, content=body,
                headers=headers | {"host": target.host_header}, extensions=extensions,
            ) as response:  # fmt: skip
                self._drain(response, started)
                return classify(
                    response.status_code,
                    response.headers.get("retry-after"),
                    response.headers.get("location"),
                )
        except httpx.TimeoutException:
            return Attempt(delivered=False, retry=True, error=f"timeout ({target.host})")
        except httpx.TransportError as exc:
            return Attempt(delivered=False, retry=True,
                           error=f"{type(exc).__name__} ({target.host})")  # fmt: skip

    def _drain(self, response: httpx.Response, started: float) -> None:
        """Read at most the size limit of the answer, within the timeout, then stop."""
        read = 0
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= self._max_response_bytes:
                return
            if self._clock() - started > self._timeout_s:
                raise httpx.ReadTimeout("response too slow")

    def _client(self, pool: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(pool)
            if client is None:
                # trust_env=False: a proxy from the environment would connect to the name,
                # not to the address that was checked.
                client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout_s), follow_redirects=False,
                    trust_env=False, limits=httpx.Limits(max_connections=64),
                    verify=self._verify,
                )  # fmt: skip
                self._clients[pool] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

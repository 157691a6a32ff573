"""How a connection's requests carry its credential: a key read from the variable the
connection names, or an Entra ID token cached and refreshed before it expires.

Keys are read here, by workers (and by operator commands that call the provider), from
the process's own environment; they go into request headers and nowhere else: never a
job, a Redis key, an outcome, a log line or an exception's text.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from orchestrator.core.errors import ConfigurationError

_CLEAN_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space: what a header value can carry
REFRESH_MARGIN_S = 300.0  # a token is renewed this long before it expires


def read_key(variable: str, environ: Mapping[str, str]) -> str:
    """The key in `variable`; raises ConfigurationError naming the variable, never a value."""
    key = environ.get(variable)
    if not key:
        raise ConfigurationError(f"{variable} is not set: a connection's key is read from it")
    if not _CLEAN_KEY.fullmatch(key):
        raise ConfigurationError(
            f"{variable} must be one token of printable ASCII, with no spaces or newlines "
            "(check the secret file for a trailing newline)"
        )
    return key


class AccessToken(Protocol):
    token: str
    expires_on: int  # epoch seconds


class TokenCredential(Protocol):
    """azure-identity's credential protocol (`DefaultAzureCredential` and the stubs)."""

    def get_token(self, *scopes: str) -> AccessToken: ...


class TokenCache:
    """One Entra ID token for one scope, fetched on first use and renewed when fewer than
    `margin_s` seconds of it are left; shared by every request of a connection."""

    def __init__(
        self,
        credential: TokenCredential,
        scope: str,
        *,
        clock: Callable[[], float] = time.time,
        margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._margin_s = margin_s
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_on - self._margin_s:
                try:
                    fresh = self._credential.get_token(self._scope)
                except Exception as exc:
                    # The credential's own text may quote anything: name its class only.
                    raise ConfigurationError(
                        f"no Entra ID token for {self._scope}: {type(exc).__name__}"
                    ) from None
                self._token, self._expires_on = fresh.token, float(fresh.expires_on)
            return self._token


class BearerTokenAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>` from a `TokenCache` to every request."""

    def __init__(self, cache: TokenCache) -> None:
        self._cache = cache

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._cache.token()}"
        yield request


@dataclass(frozen=True)
class Access:
    """What a connection's client sends to prove who it is: fixed headers and/or an auth
    flow that adds a fresh token to each request."""

    headers: Mapping[str, str]
    auth: httpx.Auth | None = None


def default_azure_credential() -> TokenCredential:
    """azure-identity's DefaultAzureCredential (the optional extra `azure`)."""
    try:
        identity: Any = importlib.import_module("azure.identity")
    except ImportError:
        raise ConfigurationError(
            'auth = "azure" needs azure-identity: pip install "run-orchestrator[azure]"'
        ) from None
    credential: TokenCredential = identity.DefaultAzureCredential()
    return credential

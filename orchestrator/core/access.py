"""Who may use the HTTP API: `[[api.tokens]]` in runctl.toml, roles, and checking a token.

    [[api.tokens]]
    name = "incident-bot"
    role = "operator"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

Only the hex SHA-256 of a token is configured, never the token. A presented token is
hashed and compared with every configured digest in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.core.errors import ConfigurationError

_ROLE_NAMES = ("viewer", "operator", "admin")


class Role(IntEnum):
    """What a token may do; each role may do what the ones below it may."""

    VIEWER = 1  # reads: jobs, runs, bulk jobs, outcomes, events, alerts, audit
    OPERATOR = 2  # + cancels, bulk jobs, aborts
    ADMIN = 3  # + dead letters

    @property
    def label(self) -> str:
        return _ROLE_NAMES[self - 1]

    @classmethod
    def parse(cls, name: str) -> Role:
        if name not in _ROLE_NAMES:
            raise ValueError(f"must be one of {', '.join(_ROLE_NAMES)}")
        return cls(_ROLE_NAMES.index(name) + 1)


class ApiToken(BaseModel):
    """One configured token: its name (recorded as `requested_by`), role and digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("role", mode="before")
    @classmethod
    def _role_by_name(cls, value: Any) -> Any:
        return Role.parse(value) if isinstance(value, str) else value


def hash_token(token: str) -> str:
    """The hex SHA-256 to configure for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """The configured tokens, looked up by the token presented or by name."""

    def __init__(self, tokens: list[ApiToken]) -> None:
        self._tokens = tokens
        self._by_name = {t.name: t for t in tokens}

    def __len__(self) -> int:
        return len(self._tokens)

    def authenticate(self, presented: str) -> ApiToken | None:
        """The token whose digest matches `presented`; every digest is compared (in
        constant time each), so the answer's timing says nothing about which matched."""
        digest = hash_token(presented).encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.sha256.encode()):
                found = token
        return found

    def named(self, name: str) -> ApiToken | None:
        return self._by_name.get(name)


def parse_tokens(data: dict[str, Any], environ_json: str | None = None) -> Tokens:
    """The `[[api.tokens]]` of a parsed runctl.toml, plus those in `environ_json` (a JSON
    array of the same tables, e.g. RUNCTL_API_TOKENS_JSON); ConfigurationError names the
    bad entry, field and rule, never a digest."""
    api = data.get("api", {})
    tables = api.get("tokens", []) if isinstance(api, dict) else None
    if not isinstance(tables, list):
        raise ConfigurationError("api.tokens: must be an array of tables, [[api.tokens]]")
    if environ_json:
        try:
            extra = json.loads(environ_json)
        except json.JSONDecodeError:
            raise ConfigurationError("RUNCTL_API_TOKENS_JSON: is not valid JSON") from None
        if not isinstance(extra, list):
            raise ConfigurationError("RUNCTL_API_TOKENS_JSON: must be a JSON array")
        tables = [*tables, *extra]
    tokens: list[ApiToken] = []
    for n, table in enumerate(tables):
        try:
            tokens.append(ApiToken.model_validate(table))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "table"
            rule = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigurationError(f"api.tokens[{n}].{field}: {rule}") from None
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise ConfigurationError("api.tokens: each name must be used once")
    return Tokens(tokens)

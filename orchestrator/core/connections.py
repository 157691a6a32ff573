"""Named connections: the `[providers.<name>]` tables of runctl.toml.

    [providers.foundry]
    kind = "azure-ai-agents"
    base_url = "https://my-hub.services.ai.azure.com/api/projects/my-project"
    auth = "azure"                 # an Entra ID token (DefaultAzureCredential)
    api_version = "v1"
    rate_limit_rps = 20

A connection names where runs live and how to reach them; the credential is the *name* of
an environment variable (`api_key_env`) or `auth = "azure"`, never a key. Which fields a
kind accepts and its defaults are the kind's knowledge (`orchestrator.providers.registry`);
this module only parses the file. A file with no `[providers]` table gets one connection,
`openai`, built from the OPENAI_* variables, so that what worked before works unchanged.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import (
    CONNECTION_PATTERN,
    CONNECTION_RULE,
    DEFAULT_CONNECTION,
    Kind,
)
from orchestrator.core.settings import Settings

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class Auth(StrEnum):
    """How a connection proves who it is."""

    KEY = "key"  # a key read from the variable named by `api_key_env`
    AZURE = "azure"  # an Entra ID token from azure-identity's DefaultAzureCredential
    NONE = "none"  # nothing (a self-hosted server without auth)


class CancelAction(StrEnum):
    """What a langgraph cancel does to the run."""

    INTERRUPT = "interrupt"  # the run ends `interrupted`
    ROLLBACK = "rollback"  # the run and its checkpoints are deleted


class Connection(BaseModel):
    """One named connection. Holds no secret: `api_key_env` is a variable's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Kind
    base_url: str = Field(min_length=1, pattern=r"^https?://")
    api_key_env: str | None = None
    auth: Auth | None = None  # None: a key if api_key_env is given, else the kind's default
    api_version: str | None = Field(default=None, min_length=1, max_length=64)
    rate_limit_rps: float | None = Field(default=None, ge=0)  # None: RUNCTL_RATE_LIMIT_RPS
    cancel_action: CancelAction | None = None
    org_id: str | None = None  # OpenAI-Organization (openai kinds)
    project_id: str | None = None  # OpenAI-Project (openai kinds)

    @field_validator("name")
    @classmethod
    def _name_rule(cls, name: str) -> str:
        if not CONNECTION_PATTERN.fullmatch(name):
            raise ValueError(CONNECTION_RULE)
        return name

    @field_validator("api_key_env")
    @classmethod
    def _env_name_rule(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), not a key"
            )
        return name


def default_connection(settings: Settings) -> Connection:
    """`openai`, from today's OPENAI_* variables (and RUNCTL_RATE_LIMIT_RPS)."""
    return Connection(
        name=DEFAULT_CONNECTION,
        kind=Kind.OPENAI_ASSISTANTS,
        base_url=settings.base_url,
        api_key_env=DEFAULT_KEY_ENV,
        org_id=settings.org_id,
        project_id=settings.project_id,
        rate_limit_rps=settings.rate_limit_rps,
    )


def parse_connections(data: dict[str, Any]) -> list[Connection]:
    """The connections of a parsed runctl.toml (`[providers.<name>]`), in file order;
    raises ConfigurationError naming the connection, the field and the rule."""
    tables = data.get("providers", {})
    if not isinstance(tables, dict):
        raise ConfigurationError("providers: must be tables, [providers.<name>]")
    connections = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"providers.{name}: must be a table")
        try:
            connections.append(Connection.model_validate({**table, "name": name}))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "table"
            rule = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigurationError(f"providers.{name}.{field}: {rule}") from None
    return connections


def read_config(path: Path) -> dict[str, Any]:
    """runctl.toml as data; {} when there is no file."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from None

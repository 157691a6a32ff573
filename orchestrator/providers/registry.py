"""Which module speaks which kind: a new kind is one module (with its `SPEC`) and one line
here. The rest of the service asks this module, never a kind's module, what a connection
accepts and how to reach it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping

from orchestrator.core.connections import Auth, Connection
from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.models import Kind
from orchestrator.core.provider import RunsProvider
from orchestrator.providers import assistants, azure_agents, azure_openai, langgraph, responses
from orchestrator.providers.base import BuildOptions, KindSpec
from orchestrator.providers.credentials import (
    Access,
    BearerTokenAuth,
    TokenCache,
    TokenCredential,
    default_azure_credential,
    read_key,
)

SPECS: dict[Kind, KindSpec] = {
    spec.kind: spec
    for spec in (
        assistants.SPEC,
        azure_openai.SPEC,
        azure_agents.SPEC,
        langgraph.SPEC,
        responses.SPEC,
    )
}


def spec_of(kind: Kind) -> KindSpec:
    return SPECS[kind]


def check_connection(connection: Connection) -> Connection:
    """The connection with its kind's defaults filled in (auth, api_version); raises
    ConfigurationError naming the field and the rule when the kind does not accept it."""
    spec = SPECS[connection.kind]
    where = f"providers.{connection.name}"
    auth = connection.auth or (Auth.KEY if connection.api_key_env else spec.default_auth)
    accepted = ", ".join(sorted(a.value for a in spec.auths))
    if auth not in spec.auths:
        raise ConfigurationError(f"{where}.auth: {spec.kind} accepts {accepted}, not {auth}")
    if auth is Auth.KEY and connection.api_key_env is None:
        raise ConfigurationError(
            f"{where}.api_key_env: required: the name of the variable that holds the key"
            + (' (or auth = "azure")' if Auth.AZURE in spec.auths else "")
        )
    if auth is not Auth.KEY and connection.api_key_env is not None:
        raise ConfigurationError(f'{where}.api_key_env: only with auth = "key", not {auth}')
    if connection.api_version is not None and spec.default_api_version is None:
        raise ConfigurationError(f"{where}.api_version: only the Azure kinds take one")
    if connection.cancel_action is not None and not spec.cancel_actions:
        raise ConfigurationError(f"{where}.cancel_action: only langgraph takes one")
    return connection.model_copy(
        update={"auth": auth, "api_version": connection.api_version or spec.default_api_version}
    )


def check_ids(connection: Connection, thread_id: str | None, run_id: str) -> None:
    """Raise InvalidInput when an id breaks the connection's kind's rules (a UUID for
    langgraph; no thread for Responses, a thread for every other kind)."""
    spec = SPECS[connection.kind]
    if not spec.has_threads:
        if thread_id is not None:
            raise InvalidInput(
                "thread_id", f"{spec.kind} has no threads: give the run id alone", thread_id
            )
    elif thread_id is None:
        raise InvalidInput("thread_id", f"{spec.kind} needs a thread id and a run id")
    elif not spec.thread_id.check(thread_id):
        raise InvalidInput("thread_id", f"{spec.thread_id.rule} for {spec.kind}", thread_id)
    if not spec.run_id.check(run_id):
        raise InvalidInput("run_id", f"{spec.run_id.rule} for {spec.kind}", run_id)


def access_for(
    connection: Connection,
    *,
    environ: Mapping[str, str] = os.environ,
    credential_factory: Callable[[], TokenCredential] = default_azure_credential,
) -> Access:
    """The headers (or token flow) that carry the connection's credential; raises
    ConfigurationError naming a variable that is unset, never a value."""
    spec = SPECS[connection.kind]
    match connection.auth:
        case Auth.KEY if connection.api_key_env is not None:
            return Access(spec.key_headers(read_key(connection.api_key_env, environ)))
        case Auth.AZURE if spec.azure_scope is not None:
            cache = TokenCache(credential_factory(), spec.azure_scope)
            return Access({}, BearerTokenAuth(cache))
        case Auth.NONE:
            return Access({})
    raise ConfigurationError(f"providers.{connection.name}: not checked (check_connection)")


def make_provider(
    connection: Connection,
    options: BuildOptions,
    *,
    environ: Mapping[str, str] = os.environ,
    credential_factory: Callable[[], TokenCredential] = default_azure_credential,
) -> RunsProvider:
    """The client for one connection (checked by `check_connection`)."""
    access = access_for(connection, environ=environ, credential_factory=credential_factory)
    options = dataclasses.replace(options, connection_name=connection.name)
    return SPECS[connection.kind].build(connection, access, options)

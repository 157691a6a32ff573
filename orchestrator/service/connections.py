"""The named connections of this deployment, read from runctl.toml (RUNCTL_CONFIG) and
checked against their kinds; every door (CLI, Producer, workers) looks names up here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.connections import Auth, Connection, default_connection, parse_connections
from orchestrator.core.connections import read_config as read_config_file
from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.models import DEFAULT_CONNECTION
from orchestrator.core.provider import ProviderError, ProviderUnreachable
from orchestrator.core.settings import Settings
from orchestrator.providers import registry
from orchestrator.providers.base import BuildOptions, KindSpec
from orchestrator.providers.credentials import TokenCredential, read_key


@dataclass(frozen=True)
class Connections:
    """The deployment's connections by name, in file order."""

    by_name: dict[str, Connection]

    def get(self, name: str) -> Connection:
        """The connection `name`; InvalidInput naming the known ones when there is none."""
        connection = self.by_name.get(name)
        if connection is None:
            raise InvalidInput(
                "provider", f"no connection named {name!r}; known: {', '.join(self.by_name)}"
            )
        return connection

    def default_name(self) -> str:
        """`openai` when it exists, else the only connection; else --provider is needed."""
        if DEFAULT_CONNECTION in self.by_name or len(self.by_name) != 1:
            return DEFAULT_CONNECTION
        return next(iter(self.by_name))

    def resolve(self, name: str | None) -> Connection:
        return self.get(name or self.default_name())

    def spec(self, name: str) -> KindSpec:
        return registry.spec_of(self.get(name).kind)

    def check_ids(self, name: str, thread_id: str | None, run_id: str) -> Connection:
        """The connection, once the ids are valid for its kind (else InvalidInput)."""
        connection = self.get(name)
        registry.check_ids(connection, thread_id, run_id)
        return connection


def load_connections(settings: Settings) -> Connections:
    """The connections in `settings.config_file`; `openai` from the OPENAI_* variables when
    the file names none. Raises ConfigurationError naming the connection and field."""
    parsed = parse_connections(read_config_file(Path(settings.config_file)))
    connections = parsed or [default_connection(settings)]
    return Connections({c.name: registry.check_connection(c) for c in connections})


@dataclass(frozen=True)
class ConnectionInfo:
    """What `runctl providers` shows of a connection: never a key, only whether it is set."""

    name: str
    kind: str
    base_url: str
    rate_limit_rps: float | None
    credential: str  # e.g. "OPENAI_API_KEY (set)", "azure (DefaultAzureCredential)", "none"
    credential_present: bool


def describe(
    connections: Connections, settings: Settings, environ: Mapping[str, str]
) -> list[ConnectionInfo]:
    """Each connection as `runctl providers` lists it."""
    infos = []
    for connection in connections.by_name.values():
        rps = connection.rate_limit_rps
        if connection.auth is Auth.KEY and connection.api_key_env:
            present = bool(environ.get(connection.api_key_env))
            credential = f"{connection.api_key_env} ({'set' if present else 'NOT SET'})"
        else:
            present = True
            credential = "Entra ID token" if connection.auth is Auth.AZURE else "none"
        infos.append(
            ConnectionInfo(
                name=connection.name,
                kind=connection.kind.value,
                base_url=connection.base_url,
                rate_limit_rps=settings.rate_limit_rps if rps is None else rps,
                credential=credential,
                credential_present=present,
            )
        )
    return infos


def check_workers_can_start(connections: Connections, environ: Mapping[str, str]) -> None:
    """Raise ConfigurationError naming the first connection whose key variable is unset or
    unclean (never its value): a worker must not start without every credential."""
    for connection in connections.by_name.values():
        if connection.auth is Auth.KEY and connection.api_key_env:
            try:
                read_key(connection.api_key_env, environ)
            except ConfigurationError as exc:
                raise ConfigurationError(f"connection {connection.name}: {exc}") from None


def probe(
    connection: Connection,
    options: BuildOptions,
    *,
    environ: Mapping[str, str],
    credential_factory: Callable[[], TokenCredential] | None = None,
) -> tuple[bool, str]:
    """One harmless authenticated request (a look at a run that cannot exist): a 404 means
    the server is there and took the credential. Returns (ok, what was found)."""
    spec = registry.spec_of(connection.kind)
    extra = {} if credential_factory is None else {"credential_factory": credential_factory}
    try:
        provider = registry.make_provider(connection, options, environ=environ, **extra)
    except ConfigurationError as exc:
        return False, f"credential: {exc}"
    thread_id = spec.thread_id.example if spec.has_threads else None
    try:
        provider.retrieve(thread_id, spec.run_id.example)
    except ConfigurationError as exc:
        return False, f"credential: {exc}"
    except ProviderUnreachable as exc:
        return False, f"not reachable at {connection.base_url}: {exc.message}"
    except ProviderError as exc:
        if exc.http_status == 404:
            return True, "reachable and authenticated"
        if exc.http_status in (401, 403):
            return (
                False,
                f"reachable, but the credential was refused ({exc.http_status}: {exc.message})",
            )
        return False, f"reachable, but it answered {exc.http_status}: {exc.message}"
    finally:
        provider.close()
    return True, "reachable and authenticated"

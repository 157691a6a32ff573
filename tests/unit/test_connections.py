"""Named connections: the file's tables, each kind's rules and defaults, credentials read
from the variable a connection names (never shown), and Entra ID tokens cached."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.core.connections import Auth, CancelAction, Connection, parse_connections
from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.models import DEFAULT_CONNECTION, CancelJob, Kind
from orchestrator.core.settings import Settings
from orchestrator.providers import registry
from orchestrator.providers.credentials import TokenCache
from orchestrator.service.connections import (
    check_workers_can_start,
    describe,
    load_connections,
)

FILE = """
[providers.openai-prod]
kind = "openai-assistants"
base_url = "https://api.example.com/v1"
api_key_env = "PROD_KEY"
rate_limit_rps = 50

[providers.azure]
kind = "azure-openai-assistants"
base_url = "https://res.openai.azure.com"
api_key_env = "AZURE_OPENAI_API_KEY"

[providers.foundry]
kind = "azure-ai-agents"
base_url = "https://hub.services.ai.azure.com/api/projects/p"

[providers.graphs]
kind = "langgraph"
base_url = "http://127.0.0.1:8123"
cancel_action = "rollback"

[providers.responses]
kind = "openai-responses"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[rule]]
name = "default"
max_age = { in_progress = "1h" }
"""


def settings_for(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "runctl.toml"
    path.write_text(text)
    return Settings(config=str(path))


def test_every_kind_in_one_file_with_its_defaults(tmp_path: Path) -> None:
    connections = load_connections(settings_for(tmp_path, FILE)).by_name
    assert list(connections) == ["openai-prod", "azure", "foundry", "graphs", "responses"]
    assert connections["azure"].api_version == "2024-05-01-preview"
    assert connections["foundry"].auth is Auth.AZURE
    assert connections["foundry"].api_version == "v1"
    assert connections["graphs"].auth is Auth.NONE
    assert connections["graphs"].cancel_action is CancelAction.ROLLBACK
    assert connections["openai-prod"].rate_limit_rps == 50


def test_a_file_without_connections_gets_openai_from_the_environment(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, '[[rule]]\nname = "d"\nmax_age = { queued = 5 }\n')
    connections = load_connections(settings)
    openai = connections.get(DEFAULT_CONNECTION)
    assert (openai.kind, openai.api_key_env) == (Kind.OPENAI_ASSISTANTS, "OPENAI_API_KEY")
    assert openai.base_url == settings.base_url
    assert connections.default_name() == DEFAULT_CONNECTION


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "nope"\nbase_url = "http://x"', "providers.bad.kind: Input should be"),
        ('kind = "langgraph"\nbase_url = "ftp://x"', "providers.bad.base_url"),
        ('kind = "langgraph"\nbase_url = "http://x"\napi_key_env = "sk-abc def"',
         "providers.bad.api_key_env: must be the NAME"),
        ('kind = "azure-ai-agents"\nbase_url = "http://x"\napi_key_env = "K"',
         "providers.bad.auth: azure-ai-agents accepts azure"),
        ('kind = "openai-assistants"\nbase_url = "http://x"',
         "providers.bad.api_key_env: required"),
        ('kind = "openai-assistants"\nbase_url = "http://x"\napi_key_env = "K"\n'
         'cancel_action = "rollback"', "providers.bad.cancel_action: only langgraph"),
        ('kind = "langgraph"\nbase_url = "http://x"\napi_version = "v1"',
         "providers.bad.api_version: only the Azure kinds"),
    ],
)  # fmt: skip
def test_a_bad_connection_is_refused_naming_its_field(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match="^" + message.replace(".", r"\.")):
        load_connections(settings_for(tmp_path, f"[providers.bad]\n{table}\n"))


def test_an_unknown_connection_names_the_known_ones(tmp_path: Path) -> None:
    connections = load_connections(settings_for(tmp_path, FILE))
    with pytest.raises(InvalidInput, match="no connection named 'nope'; known: openai-prod, az"):
        connections.get("nope")


def test_ids_follow_the_kinds_rules(tmp_path: Path) -> None:
    connections = load_connections(settings_for(tmp_path, FILE))
    uuid_ = "0193a6f2-4b5c-7d8e-9f00-112233445566"
    connections.check_ids("graphs", uuid_, uuid_)
    with pytest.raises(InvalidInput, match=r"run_id: must be a UUID .* for langgraph"):
        connections.check_ids("graphs", uuid_, "run_abc")
    with pytest.raises(InvalidInput, match="thread_id: openai-responses has no threads"):
        connections.check_ids("responses", "thread_1", "resp_1")
    connections.check_ids("responses", None, "resp_1")
    with pytest.raises(InvalidInput, match="thread_id: azure-openai-assistants needs a thread"):
        connections.check_ids("azure", None, "run_1")


def test_each_kind_carries_its_key_in_its_own_header(tmp_path: Path) -> None:
    connections = load_connections(settings_for(tmp_path, FILE)).by_name
    env = {"PROD_KEY": "k1", "AZURE_OPENAI_API_KEY": "k2", "OPENAI_API_KEY": "k3"}
    access = {n: registry.access_for(c, environ=env) for n, c in connections.items()
              if c.auth is not Auth.AZURE}  # fmt: skip
    assert access["openai-prod"].headers == {"Authorization": "Bearer k1"}
    assert access["azure"].headers == {"api-key": "k2"}
    assert access["graphs"].headers == {}
    graphs = connections["graphs"].model_copy(update={"auth": Auth.KEY, "api_key_env": "LG"})
    assert registry.access_for(graphs, environ={"LG": "k4"}).headers == {"x-api-key": "k4"}


def test_a_worker_refuses_to_start_naming_the_unset_variable_never_a_value(
    tmp_path: Path,
) -> None:
    connections = load_connections(settings_for(tmp_path, FILE))
    env = {"PROD_KEY": "secret-one", "OPENAI_API_KEY": "secret-two"}
    with pytest.raises(ConfigurationError) as caught:
        check_workers_can_start(connections, env)
    assert str(caught.value) == (
        "connection azure: AZURE_OPENAI_API_KEY is not set: a connection's key is read from it"
    )
    with pytest.raises(ConfigurationError) as unclean:
        check_workers_can_start(connections, {**env, "AZURE_OPENAI_API_KEY": "abc\n"})
    assert "abc" not in str(unclean.value)
    assert "trailing newline" in str(unclean.value)


def test_providers_lists_whether_each_credential_is_present(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, FILE)
    infos = {i.name: i for i in describe(load_connections(settings), settings, {"PROD_KEY": "x"})}
    assert infos["openai-prod"].credential == "PROD_KEY (set)"
    assert infos["azure"].credential == "AZURE_OPENAI_API_KEY (NOT SET)"
    assert not infos["azure"].credential_present
    assert infos["foundry"].credential == "Entra ID token"
    assert infos["graphs"].rate_limit_rps == settings.rate_limit_rps


@dataclass
class Token:
    token: str
    expires_on: int


@dataclass
class StubCredential:
    """azure-identity's protocol: hands out numbered tokens valid for an hour."""

    now: list[float]
    scopes: list[str] = field(default_factory=list)

    def get_token(self, *scopes: str) -> Token:
        self.scopes += scopes
        return Token(f"token-{len(self.scopes)}", int(self.now[0]) + 3600)


def test_an_entra_token_is_cached_and_renewed_before_it_expires() -> None:
    now = [1000.0]
    credential = StubCredential(now)
    cache = TokenCache(credential, "https://ai.azure.com/.default", clock=lambda: now[0],
                       margin_s=300)  # fmt: skip
    assert cache.token() == "token-1"
    now[0] += 3299  # 301 s left: still good
    assert cache.token() == "token-1"
    now[0] += 2  # 299 s left: inside the margin, renewed
    assert cache.token() == "token-2"
    assert credential.scopes == ["https://ai.azure.com/.default"] * 2


def test_a_failing_credential_is_named_by_its_class_only() -> None:
    class Broken:
        def get_token(self, *scopes: str) -> Token:
            raise RuntimeError("client_secret=hunter2 rejected")

    with pytest.raises(ConfigurationError) as caught:
        TokenCache(Broken(), "scope").token()
    assert "hunter2" not in str(caught.value)
    assert "RuntimeError" in str(caught.value)


def test_an_azure_connection_sends_a_bearer_token_from_the_cache() -> None:
    import httpx

    now = [1000.0]
    connection = registry.check_connection(
        Connection(name="f", kind=Kind.AZURE_AI_AGENTS, base_url="http://x")
    )
    access = registry.access_for(connection, credential_factory=lambda: StubCredential(now))
    assert access.auth is not None
    request = next(access.auth.auth_flow(httpx.Request("GET", "http://x/threads")))
    assert request.headers["Authorization"] == "Bearer token-1"


def test_jobs_queued_before_connections_had_names_go_to_openai() -> None:
    job = CancelJob.model_validate({"provider": "assistants", "thread_id": "t", "run_id": "r"})
    assert job.provider == DEFAULT_CONNECTION


def test_the_policy_file_may_hold_connections() -> None:
    from orchestrator.core.policies import check_policies, load_policies

    assert check_policies(FILE) == []
    assert load_policies(FILE).rule[0].name == "default"
    assert parse_connections(tomllib.loads(FILE))[0].name == "openai-prod"

"""The simulator's other kinds, driven by each kind's official client unchanged: `openai`
(Responses, validated against the spec's `Response`), `openai.AzureOpenAI` (api-key and
api-version enforced), langgraph-sdk (202 cancel, the 404 ambiguity, rollback deleting the
run), and azure-ai-agents' `AgentsClient` (a bearer token and `api-version` enforced; also
runctl's own client with a stub credential)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from azure.ai.agents import AgentsClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import NotFoundError, PermissionDeniedError, UnprocessableEntityError
from openai import AzureOpenAI, DefaultHttpxClient, OpenAI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from orchestrator.core.connections import Connection
from orchestrator.core.models import Kind
from orchestrator.devkit.simulator import SimulatorConfig, start_in_thread
from orchestrator.devkit.simulator.server import SimulatorHandle
from orchestrator.providers import registry
from orchestrator.providers.base import BuildOptions, ProviderError
from tests.integration.test_simulator_sdk import SPEC_URI, _as_json_schema, _components

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning"),
]

KEY = "sim-kinds-key"
CONFIG: dict[str, Any] = {"api_key": KEY, "cancel_settle_min_s": 0.02,
                          "cancel_settle_max_s": 0.05, "seed": 7}  # fmt: skip
WAIT_S = 5.0


@functools.cache
def response_validator() -> Draft202012Validator:
    document = {"components": _as_json_schema(_components())}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry_: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/Response"}
    return Draft202012Validator(schema, registry=registry_)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    handle = start_in_thread(SimulatorConfig.model_validate(CONFIG))
    yield handle
    handle.stop()


def root(sim: SimulatorHandle) -> str:
    return f"http://{sim.host}:{sim.port}"


def seed(sim: SimulatorHandle, **spec: Any) -> dict[str, str]:
    reply = httpx.post(f"{sim.admin_url}/runs", json={"count": 1, **spec}, timeout=10)
    run: dict[str, str] = reply.raise_for_status().json()["runs"][0]
    return run


def until(probe: Any, what: str) -> Any:
    deadline_s = time.monotonic() + WAIT_S
    while time.monotonic() < deadline_s:
        if value := probe():
            return value
        time.sleep(0.01)
    pytest.fail(f"not {what} within {WAIT_S} s")


# -- Responses ----------------------------------------------------------------------------


@dataclass
class Bodies:
    seen: list[dict[str, Any]]

    def capture(self, response: httpx.Response) -> None:
        response.read()
        if response.status_code < 400:
            self.seen.append(response.json())


def test_the_openai_sdk_cancels_a_background_response(sim: SimulatorHandle) -> None:
    bodies = Bodies([])
    http_client = DefaultHttpxClient(event_hooks={"response": [bodies.capture]})
    client = OpenAI(api_key=KEY, base_url=sim.base_url, http_client=http_client, max_retries=0)
    try:
        created = client.responses.create(model="gpt-sim", input="hi", background=True)
        assert created.status == "queued"
        assert created.id.startswith("resp_")
        client.responses.cancel(created.id)
        final = until(
            lambda: (r := client.responses.retrieve(created.id)).status == "cancelled" and r,
            "cancelled",
        )
        assert final.status == "cancelled"
        assert client.responses.cancel(created.id).status == "cancelled"  # idempotent
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve("resp_nothing_here")
        with pytest.raises(openai.AuthenticationError):
            OpenAI(api_key="wrong", base_url=sim.base_url, max_retries=0).responses.retrieve(
                created.id
            )
    finally:
        client.close()
    assert bodies.seen
    for body in bodies.seen:
        problems = [e.message for e in response_validator().iter_errors(body)]
        assert not problems, f"{body.get('status')}: {problems}"


# -- Azure OpenAI Assistants ----------------------------------------------------------------


def test_azure_openai_client_cancels_with_api_key_and_api_version(sim: SimulatorHandle) -> None:
    run = seed(sim, status="in_progress")
    endpoint = f"{root(sim)}/azure"
    client = AzureOpenAI(api_key=KEY, azure_endpoint=endpoint, api_version="2024-05-01-preview",
                         max_retries=0)  # fmt: skip
    try:
        cancelling = client.beta.threads.runs.cancel(run["run_id"], thread_id=run["thread_id"])
        assert cancelling.status == "cancelling"
        final = client.beta.threads.runs.poll(run["run_id"], thread_id=run["thread_id"])
        assert final.status == "cancelled"
    finally:
        client.close()
    wrong = AzureOpenAI(api_key="wrong", azure_endpoint=endpoint, api_version="2024-05-01-preview",
                        max_retries=0)  # fmt: skip
    with pytest.raises(openai.AuthenticationError):
        wrong.beta.threads.runs.retrieve(run["run_id"], thread_id=run["thread_id"])
    wrong.close()
    path = f"{endpoint}/openai/threads/{run['thread_id']}/runs/{run['run_id']}"
    no_version = httpx.get(path, headers={"api-key": KEY, "OpenAI-Beta": "assistants=v2"})
    assert no_version.status_code == 404


# -- Foundry Agents ---------------------------------------------------------------------------


def test_foundry_agents_requests_need_a_bearer_token_and_api_version(
    sim: SimulatorHandle,
) -> None:
    """The requests azure-ai-agents' AgentsClient sends for runs.cancel / runs.get."""
    run = seed(sim, status="in_progress")
    base = f"{root(sim)}/foundry/threads/{run['thread_id']}/runs/{run['run_id']}"
    bearer = {"Authorization": f"Bearer {KEY}"}
    cancelled = httpx.post(f"{base}/cancel", params={"api-version": "v1"}, headers=bearer)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelling")
    assert httpx.get(base, params={"api-version": "v1"}).status_code == 401
    assert httpx.get(base, params={"api-version": "v1"},
                     headers={"api-key": KEY}).status_code == 401  # fmt: skip
    assert httpx.get(base, headers=bearer).status_code == 400


class SdkCredential:
    """A TokenCredential for azure-core: the simulator's key (or another) as the token."""

    def __init__(self, token: str = KEY) -> None:
        self._token = token

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


def test_foundry_agents_sdk_cancels_and_gets_a_run(sim: SimulatorHandle) -> None:
    """azure-ai-agents' own client, unchanged; `enforce_https=False` is azure-core's switch
    for a bearer token over plain HTTP (the simulator has no TLS)."""
    endpoint = f"{root(sim)}/foundry"
    client = AgentsClient(endpoint=endpoint, credential=SdkCredential())
    run = seed(sim, status="in_progress")
    cancelled = client.runs.cancel(run["thread_id"], run["run_id"], enforce_https=False)
    assert (cancelled.id, cancelled.status) == (run["run_id"], "cancelling")
    looked = client.runs.get(run["thread_id"], run["run_id"], enforce_https=False)
    assert looked.status in {"cancelling", "cancelled"}
    with pytest.raises(ResourceNotFoundError):
        client.runs.get(run["thread_id"], "run_missing", enforce_https=False)
    wrong = AgentsClient(endpoint=endpoint, credential=SdkCredential("wrong"))
    with pytest.raises(ClientAuthenticationError):
        wrong.runs.get(run["thread_id"], run["run_id"], enforce_https=False)
    client.close()
    wrong.close()


@dataclass
class StubToken:
    token: str
    expires_on: int


class StubCredential:
    """What DefaultAzureCredential would hand out: here, the simulator's key as a token."""

    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str) -> StubToken:
        assert scopes == ("https://ai.azure.com/.default",)
        self.calls += 1
        return StubToken(KEY, int(time.time()) + 3600)


def test_runctls_foundry_client_sends_a_cached_entra_token(sim: SimulatorHandle) -> None:
    credential = StubCredential()
    connection = registry.check_connection(
        Connection(name="foundry", kind=Kind.AZURE_AI_AGENTS, base_url=f"{root(sim)}/foundry")
    )
    provider = registry.make_provider(
        connection, BuildOptions(2, 5, 5), credential_factory=lambda: credential
    )
    run = seed(sim, status="in_progress")
    try:
        assert provider.cancel(run["thread_id"], run["run_id"]).run is not None
        looked = provider.retrieve(run["thread_id"], run["run_id"]).run
        assert looked is not None
        assert looked.status in {"cancelling", "cancelled"}
    finally:
        provider.close()
    assert credential.calls == 1  # one token for both requests


# -- LangGraph --------------------------------------------------------------------------------


def test_langgraph_sdk_cancels_rolls_back_and_meets_the_404_ambiguity(
    sim: SimulatorHandle,
) -> None:
    client = get_sync_client(url=f"{root(sim)}/langgraph", api_key=KEY)
    try:
        thread = client.threads.create()
        run = client.runs.create(thread["thread_id"], "sleeper", input={"sleep_s": 60})
        assert run["status"] == "pending"
        uuid.UUID(run["run_id"])
        client.runs.cancel(thread["thread_id"], run["run_id"])  # 202, no body
        until(lambda: client.runs.get(thread["thread_id"], run["run_id"])["status"]
              == "interrupted", "interrupted")  # fmt: skip
        with pytest.raises(NotFoundError, match="No matching runs to cancel"):
            client.runs.cancel(thread["thread_id"], run["run_id"])  # finished: 404
        with pytest.raises(NotFoundError, match="No runs found to cancel"):
            client.runs.cancel(thread["thread_id"], str(uuid.uuid4()))  # never existed: 404
        doomed = client.runs.create(thread["thread_id"], "sleeper", input={"sleep_s": 60})
        client.runs.cancel(thread["thread_id"], doomed["run_id"], action="rollback")
        with pytest.raises(NotFoundError):
            client.runs.get(thread["thread_id"], doomed["run_id"])
        with pytest.raises(UnprocessableEntityError):
            client.runs.get(thread["thread_id"], "not-a-uuid")
        running = client.runs.create(thread["thread_id"], "sleeper", input={"sleep_s": 60})
        behind = client.runs.create(thread["thread_id"], "sleeper", input={"sleep_s": 60})
        listed = client.runs.list(thread["thread_id"], status="pending")
        assert [r["run_id"] for r in listed] == [behind["run_id"]]  # queued behind running
        assert client.runs.get(thread["thread_id"], running["run_id"])["status"] == "running"
    finally:
        client.close()
    anonymous = get_sync_client(url=f"{root(sim)}/langgraph", api_key=None)
    with pytest.raises(PermissionDeniedError):
        anonymous.threads.create()
    anonymous.close()


def test_runctls_langgraph_client_reads_the_simulator(sim: SimulatorHandle) -> None:
    run = seed(sim, status="in_progress", ids="uuid")
    connection = registry.check_connection(
        Connection(
            name="g", kind=Kind.LANGGRAPH, base_url=f"{root(sim)}/langgraph", api_key_env="LG_KEY"
        )
    )
    provider = registry.make_provider(connection, BuildOptions(2, 5, 5), environ={"LG_KEY": KEY})
    try:
        assert provider.cancel(run["thread_id"], run["run_id"]).run is None
        with pytest.raises(ProviderError) as caught:
            provider.cancel(run["thread_id"], str(uuid.uuid4()))
        assert caught.value.http_status == 404
    finally:
        provider.close()

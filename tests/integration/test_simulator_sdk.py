"""The simulator against the official `openai` SDK and the OpenAPI spec's `RunObject`.

Every JSON body the SDK or the raw client receives is checked at teardown: run objects against
the spec's schema, errors against the protocol's error shape.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import openai
import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev deps
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # nor types-jsonschema
from openai import DefaultHttpxClient, OpenAI
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from orchestrator.devkit.simulator import SimulatorConfig, start_in_thread
from orchestrator.devkit.simulator.server import SimulatorHandle

pytestmark = [
    pytest.mark.integration,
    # The SDK marks the whole Assistants API deprecated; that is the API we simulate.
    pytest.mark.filterwarnings("ignore:The Assistants API is deprecated:DeprecationWarning"),
]

SPEC_PATH = Path("/work/shared/reference/openai-openapi.yaml")
SPEC_URI = "urn:openai-openapi"
API_KEY = "sim-key"
API_HEADERS = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v2"}
BASE_CONFIG: dict[str, Any] = {
    "cancel_settle_min_s": 0.02,
    "cancel_settle_max_s": 0.05,
    "poll_after_ms": 10,
    "seed": 1234,
}
NULLABLE_ONLY = {"nullable": True}
ALL_STATUSES = [
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
WAIT_S = 5.0


# -- the spec ---------------------------------------------------------------------------


def _as_json_schema(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema. The spec declares OpenAPI 3.1 (plain JSON
    Schema 2020-12, where `nullable` means nothing) yet `RunObject` still uses the 3.0
    keyword, also as a lone `allOf` member; read literally, every null would be refused."""
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    nullable = node.get("nullable") is True
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable":
            continue
        members = value
        if key == "allOf" and NULLABLE_ONLY in value:
            nullable = True
            members = [member for member in value if member != NULLABLE_ONLY]
        converted[key] = _as_json_schema(members)
    return {"anyOf": [converted, {"type": "null"}]} if nullable else converted


@functools.cache
def _components() -> dict[str, Any]:
    # 3 MB of YAML: load it once per test session, with the C loader when there is one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(SPEC_PATH.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    components: dict[str, Any] = spec["components"]
    return components


@functools.cache
def run_validator() -> Draft202012Validator:
    document = {"components": _as_json_schema(_components())}
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/RunObject"}
    return Draft202012Validator(schema, registry=registry)


def run_properties() -> set[str]:
    return set(_components()["schemas"]["RunObject"]["properties"])


def assert_valid_run(body: dict[str, Any]) -> None:
    problems = [error.message for error in run_validator().iter_errors(body)]
    assert not problems, f"{body.get('id')} ({body.get('status')}): {problems}"
    assert set(body) <= run_properties(), set(body) - run_properties()


def assert_valid_error(body: dict[str, Any]) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)


class _Response(Protocol):
    status_code: int

    def read(self) -> bytes: ...


class Seen:
    """The JSON bodies of every API response a client received."""

    def __init__(self) -> None:
        self.bodies: list[tuple[int, dict[str, Any]]] = []

    def capture(self, response: _Response) -> None:
        self.bodies.append((response.status_code, json.loads(response.read())))

    def assert_all_valid(self) -> None:
        runs = 0
        for status, body in self.bodies:
            if status >= 400:
                assert_valid_error(body)
            elif body.get("object") == "thread.run":
                assert_valid_run(body)
                runs += 1
            elif body.get("object") == "list":
                for run in body["data"]:
                    assert_valid_run(run)
                    runs += 1
        assert runs or not self.bodies or all(status >= 400 for status, _ in self.bodies)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    handle = start_in_thread(SimulatorConfig.model_validate(BASE_CONFIG))
    yield handle
    handle.stop()


@pytest.fixture
def admin(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    """A client of the `/_sim` routes; the simulator starts each test empty."""
    with httpx.Client(base_url=sim.admin_url, timeout=10.0) as client:
        client.post("/reset", json={"config": BASE_CONFIG}).raise_for_status()
        yield client


@pytest.fixture
def seen() -> Iterator[Seen]:
    bodies = Seen()
    yield bodies
    bodies.assert_all_valid()


@pytest.fixture
def sdk(sim: SimulatorHandle, admin: httpx.Client, seen: Seen) -> Iterator[OpenAI]:
    http_client = DefaultHttpxClient(event_hooks={"response": [seen.capture]})
    client = OpenAI(api_key=API_KEY, base_url=sim.base_url, http_client=http_client, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def raw(sim: SimulatorHandle, admin: httpx.Client, seen: Seen) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.base_url,
        headers=API_HEADERS,
        timeout=10.0,
        event_hooks={"response": [seen.capture]},
    ) as client:
        yield client


def seed(admin: httpx.Client, **spec: Any) -> list[dict[str, str]]:
    response = admin.post("/runs", json=spec)
    response.raise_for_status()
    runs: list[dict[str, str]] = response.json()["runs"]
    return runs


def wait_for_status(raw: httpx.Client, thread_id: str, run_id: str, status: str) -> None:
    deadline_s = time.monotonic() + WAIT_S
    while time.monotonic() < deadline_s:
        if raw.get(f"/threads/{thread_id}/runs/{run_id}").json()["status"] == status:
            return
        time.sleep(0.01)
    pytest.fail(f"{run_id} did not reach {status} within {WAIT_S} s")


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# -- the run lifecycle through the SDK --------------------------------------------------


def test_sdk_creates_cancels_and_polls_a_run_to_cancelled(sdk: OpenAI) -> None:
    run = sdk.beta.threads.create_and_run(assistant_id="asst_abc", metadata={"job": "1"})
    assert run.status == "queued"
    assert run.id.startswith("run_")
    assert run.thread_id.startswith("thread_")
    assert run.metadata == {"job": "1"}

    cancelling = sdk.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert cancelling.status == "cancelling"

    final = sdk.beta.threads.runs.poll(run.id, thread_id=run.thread_id)
    assert final.status == "cancelled"
    assert final.cancelled_at is not None
    assert final.expires_at is None
    assert final.usage is not None

    again = sdk.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
    assert again.status == "cancelled"
    listed = sdk.beta.threads.runs.list(run.thread_id)
    assert [item.id for item in listed.data] == [run.id]


def test_sdk_sees_a_run_complete_on_its_own(sdk: OpenAI, admin: httpx.Client) -> None:
    admin.patch("/config", json={"run_duration_s": 0.05}).raise_for_status()
    run = sdk.beta.threads.create_and_run(assistant_id="asst_abc")
    final = sdk.beta.threads.runs.poll(run.id, thread_id=run.thread_id)
    assert final.status == "completed"
    assert final.completed_at is not None
    assert final.usage is not None
    assert final.usage.total_tokens > 0


def test_race_complete_run_ends_completed_after_an_accepted_cancel(sdk: OpenAI) -> None:
    run = sdk.beta.threads.create_and_run(
        assistant_id="asst_abc", metadata={"sim_behavior": "race_complete"}
    )
    assert sdk.beta.threads.runs.cancel(run.id, thread_id=run.thread_id).status == "cancelling"
    final = sdk.beta.threads.runs.poll(run.id, thread_id=run.thread_id)
    assert final.status == "completed"
    assert final.cancelled_at is None


def test_sdk_pages_through_a_thread_s_runs(sdk: OpenAI, admin: httpx.Client) -> None:
    runs = seed(admin, count=5, thread_id="thread_paged")
    page = sdk.beta.threads.runs.list("thread_paged", limit=2)
    assert page.has_more
    every = [run.id for run in page]  # iterating follows `after` cursors page by page
    assert every == [run["run_id"] for run in reversed(runs)]
    oldest_first = sdk.beta.threads.runs.list("thread_paged", limit=100, order="asc")
    assert [run.id for run in oldest_first.data] == [run["run_id"] for run in runs]


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_status_is_a_valid_run_object(
    raw: httpx.Client, admin: httpx.Client, status: str
) -> None:
    (run,) = seed(admin, status=status, metadata={"k": "v"})
    body = raw.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}").json()
    assert body["status"] == status
    assert_valid_run(body)
    terminal = status in {"cancelled", "failed", "completed", "incomplete", "expired"}
    assert (body["usage"] is None) is not terminal
    assert (body["expires_at"] is None) is terminal
    assert (body["required_action"] is not None) is (status == "requires_action")


# -- the errors, exactly ----------------------------------------------------------------


def test_second_cancel_is_refused_with_the_protocol_error(sdk: OpenAI) -> None:
    run = sdk.beta.threads.create_and_run(assistant_id="asst_abc")
    sdk.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {
        "error": {
            "message": "Cannot cancel run with status 'cancelling'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed", "expired"])
def test_cancel_of_a_finished_run_is_refused(
    raw: httpx.Client, admin: httpx.Client, status: str
) -> None:
    (run,) = seed(admin, status=status)
    response = raw.post(f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel")
    assert response.status_code == 400
    assert error_of(response)["message"] == f"Cannot cancel run with status '{status}'."
    assert error_of(response)["type"] == "invalid_request_error"


def test_unknown_thread_and_run_are_404(
    sdk: OpenAI, raw: httpx.Client, admin: httpx.Client
) -> None:
    (run,) = seed(admin)
    with pytest.raises(openai.NotFoundError):
        sdk.beta.threads.runs.retrieve("run_missing", thread_id=run["thread_id"])
    no_run = raw.get(f"/threads/{run['thread_id']}/runs/run_missing")
    no_thread = raw.post(f"/threads/thread_missing/runs/{run['run_id']}/cancel")
    no_thread_list = raw.get("/threads/thread_missing/runs")
    assert no_run.status_code == no_thread.status_code == no_thread_list.status_code == 404
    assert error_of(no_run)["message"] == "No run found with id 'run_missing'."
    assert error_of(no_thread)["message"] == "No thread found with id 'thread_missing'."
    assert error_of(no_thread_list)["message"] == "No thread found with id 'thread_missing'."
    assert error_of(no_thread)["type"] == "invalid_request_error"


def test_wrong_or_missing_key_is_401_and_never_echoed(
    sim: SimulatorHandle, raw: httpx.Client, admin: httpx.Client, seen: Seen
) -> None:
    (run,) = seed(admin)
    secret = "sk-proj-do-not-echo-0123456789"
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    wrong_key = OpenAI(
        api_key=secret,
        base_url=sim.base_url,
        http_client=DefaultHttpxClient(event_hooks={"response": [seen.capture]}),
        max_retries=0,
    )
    with wrong_key, pytest.raises(openai.AuthenticationError) as caught:
        wrong_key.beta.threads.runs.retrieve(run["run_id"], thread_id=run["thread_id"])
    assert caught.value.status_code == 401
    assert secret not in caught.value.response.text
    assert caught.value.code == "invalid_api_key"

    wrong = raw.get(path, headers={"Authorization": f"Bearer {secret}"})
    missing = raw.get(path, headers={"Authorization": ""})
    del raw.headers["Authorization"]
    absent = raw.get(path)
    for response in (wrong, missing, absent):
        assert response.status_code == 401
        assert error_of(response)["type"] == "invalid_request_error"
        assert error_of(response)["code"] == "invalid_api_key"
        assert secret not in response.text
    assert error_of(wrong)["message"] == "Incorrect API key provided."


def test_missing_beta_header_is_400(raw: httpx.Client, admin: httpx.Client) -> None:
    (run,) = seed(admin)
    del raw.headers["OpenAI-Beta"]
    response = raw.post(f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel")
    assert response.status_code == 400
    assert "'OpenAI-Beta'" in error_of(response)["message"]
    assert "assistants=v2" in error_of(response)["message"]
    assert admin.get("/stats").json()["cancels_received"] == 0


def test_unknown_path_is_the_api_s_json_404(raw: httpx.Client) -> None:
    response = raw.get("/threads/thread_x/runs/run_x/steps")
    assert response.status_code == 404
    assert (
        error_of(response)["message"] == "Invalid URL (GET /v1/threads/thread_x/runs/run_x/steps)"
    )


def test_missing_assistant_id_is_400(raw: httpx.Client) -> None:
    response = raw.post("/threads/runs", json={"metadata": {}})
    assert response.status_code == 400
    assert error_of(response)["param"] == "assistant_id"


# -- rate limits and injected failures --------------------------------------------------


def test_rate_limit_answers_429_with_openai_headers(raw: httpx.Client, admin: httpx.Client) -> None:
    admin.patch("/config", json={"rate_limit_rps": 5}).raise_for_status()
    (run,) = seed(admin)
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    responses = [raw.get(path) for _ in range(10)]
    statuses = [response.status_code for response in responses]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = next(response for response in responses if response.status_code == 429)
    assert error_of(limited) == {
        "message": error_of(limited)["message"],
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    retry_after_ms = float(limited.headers["retry-after-ms"])
    assert 0 < retry_after_ms <= 200.0
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["x-ratelimit-limit-requests"] == "5"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.headers["x-ratelimit-reset-requests"].endswith("ms")
    assert responses[0].headers["x-ratelimit-remaining-requests"] == "4"


def test_sdk_retry_waits_what_the_429_asked(
    sim: SimulatorHandle, admin: httpx.Client, seen: Seen
) -> None:
    admin.patch("/config", json={"rate_429_rate": 1.0, "retry_after_s": 0.1}).raise_for_status()
    (run,) = seed(admin)
    client = OpenAI(
        api_key=API_KEY,
        base_url=sim.base_url,
        http_client=DefaultHttpxClient(event_hooks={"response": [seen.capture]}),
        max_retries=2,
    )
    with client, pytest.raises(openai.RateLimitError) as caught:
        client.beta.threads.runs.retrieve(run["run_id"], thread_id=run["thread_id"])
    assert caught.value.response.headers["retry-after-ms"] == "100"
    assert caught.value.response.headers["retry-after"] == "1"
    log = admin.get("/requests", params={"run_id": run["run_id"]}).json()["requests"]
    assert [entry["status"] for entry in log] == [429, 429, 429]
    gaps_s = [later["t"] - earlier["t"] for earlier, later in itertools.pairwise(log)]
    assert all(gap_s >= 0.1 for gap_s in gaps_s), gaps_s


def test_injected_5xx_use_the_server_error_shape(raw: httpx.Client, admin: httpx.Client) -> None:
    admin.patch("/config", json={"error_5xx_rate": 1.0}).raise_for_status()
    responses = [raw.get("/threads/thread_x/runs") for _ in range(20)]
    assert {response.status_code for response in responses} <= {500, 502, 503}
    assert {error_of(response)["type"] for response in responses} == {"server_error"}


def test_scripted_lost_cancel_response_still_cancels(
    raw: httpx.Client, admin: httpx.Client
) -> None:
    (run,) = seed(admin, fail_cancel=[{"status": 504, "apply": True}])
    path = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    lost = raw.post(f"{path}/cancel")
    assert lost.status_code == 504
    assert raw.get(path).json()["status"] in {"cancelling", "cancelled"}
    wait_for_status(raw, run["thread_id"], run["run_id"], "cancelled")
    stats = admin.get("/stats").json()
    assert (stats["cancels_received"], stats["cancels_applied"]) == (1, 1)


def test_stuck_cancelling_run_stays_cancelling(raw: httpx.Client, admin: httpx.Client) -> None:
    admin.patch("/config", json={"cancel_settle_max_s": 0.02, "cancel_settle_min_s": 0.0})
    (stuck, normal) = [
        seed(admin, behavior=behavior)[0] for behavior in ("stuck_cancelling", "normal")
    ]
    for run in (stuck, normal):
        raw.post(f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel").raise_for_status()
    wait_for_status(raw, normal["thread_id"], normal["run_id"], "cancelled")
    # The normal run, cancelled after the stuck one, has settled: the stuck one never will.
    assert raw.get(f"/threads/{stuck['thread_id']}/runs/{stuck['run_id']}").json()["status"] == (
        "cancelling"
    )


# -- the admin routes -------------------------------------------------------------------


def test_admin_stats_count_api_requests(raw: httpx.Client, admin: httpx.Client) -> None:
    runs = seed(admin, count=3)
    for run in runs:
        raw.post(f"/threads/{run['thread_id']}/runs/{run['run_id']}/cancel")
        raw.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}")
    raw.post(f"/threads/{runs[0]['thread_id']}/runs/{runs[0]['run_id']}/cancel")
    stats = admin.get("/stats").json()
    assert stats["requests_total"] == 7
    assert stats["by_route"] == {"cancel_run": 4, "retrieve_run": 3}
    assert stats["by_status"] == {"200": 6, "400": 1}
    assert (stats["cancels_received"], stats["cancels_applied"]) == (4, 3)
    assert 1 <= stats["max_rps_1s"] <= 7
    assert stats["runs_total"] == 3
    assert sum(stats["runs_by_status"].values()) == 3

    cancels = admin.get("/requests", params={"route": "cancel_run", "status": "400"}).json()
    assert [entry["run_id"] for entry in cancels["requests"]] == [runs[0]["run_id"]]
    assert set(cancels["requests"][0]) == {"t", "method", "route", "thread_id", "run_id", "status"}


def test_admin_config_is_validated_and_never_shows_the_key(admin: httpx.Client) -> None:
    refused = admin.patch("/config", json={"error_5xx_rate": 2})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "error_5xx_rate"
    unknown = admin.patch("/config", json={"no_such_knob": 1})
    assert unknown.status_code == 400
    changed = admin.patch("/config", json={"latency_ms": 1, "api_key": "sk-other"})
    assert changed.status_code == 200
    assert changed.json()["latency_ms"] == 1
    assert changed.json()["api_key"] == "***"
    assert admin.get("/config").json()["cancel_settle_max_s"] == BASE_CONFIG["cancel_settle_max_s"]


def test_admin_seed_is_validated(admin: httpx.Client) -> None:
    assert admin.post("/runs", json={"count": 0}).status_code == 400
    assert admin.post("/runs", json={"status": "paused"}).status_code == 400
    assert admin.post("/runs", json={"fail_cancel": [{"status": 200}]}).status_code == 400
    both = admin.post("/runs", json={"thread_id": "thread_a", "runs_per_thread": 2})
    assert both.status_code == 400
    assert admin.post("/runs", content=b"not json").status_code == 400
    assert admin.get("/health").json() == {"status": "ok"}


def test_reset_forgets_runs_and_traffic(raw: httpx.Client, admin: httpx.Client) -> None:
    (run,) = seed(admin)
    raw.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}")
    admin.post("/reset").raise_for_status()
    stats = admin.get("/stats").json()
    assert (stats["requests_total"], stats["runs_total"]) == (0, 0)
    assert raw.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}").status_code == 404


def test_stopped_simulator_refuses_connections() -> None:
    handle = start_in_thread(SimulatorConfig())
    assert httpx.get(f"{handle.admin_url}/health").status_code == 200
    handle.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.admin_url}/health")

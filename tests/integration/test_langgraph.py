"""Stopping runs on LangGraph's own server (`langgraph dev`, langgraph-api) through real
workers: runs are created with langgraph-sdk, cancelled with `runctl`'s Producer, and the
server is asked afterwards what became of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from langgraph_sdk.errors import NotFoundError

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import Result
from tests.integration.harness import (
    Deployment,
    fresh_database,
    outcome_of,
    start_worker,
    wait_for,
)
from tests.integration.langgraph_server import LangGraphServer, langgraph_dev
from workers.producer import Producer

pytestmark = pytest.mark.integration
DATABASE = 7
LONG_S = 120.0  # a run that would outlive every test unless cancelled


@pytest.fixture(scope="session")
def langgraph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LangGraphServer]:
    with langgraph_dev(tmp_path_factory.mktemp("langgraph")) as server:
        yield server


@pytest.fixture(scope="module")
def graphs(langgraph_server: LangGraphServer) -> Iterator[SyncLangGraphClient]:
    client = get_sync_client(url=langgraph_server.base_url, api_key=None)
    yield client
    client.close()


@pytest.fixture(scope="module")
def producer(
    langgraph_server: LangGraphServer, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Producer]:
    """A worker configured with two langgraph connections (interrupt and rollback) only."""
    config = tmp_path_factory.mktemp("lgconfig") / "runctl.toml"
    config.write_text(
        f'[providers.graphs]\nkind = "langgraph"\nbase_url = "{langgraph_server.base_url}"\n\n'
        f'[providers.graphs-rollback]\nkind = "langgraph"\n'
        f'base_url = "{langgraph_server.base_url}"\ncancel_action = "rollback"\n'
    )
    deployment = Deployment(
        redis_url=fresh_database(redis_url, DATABASE),
        queue=f"runctl-langgraph-{uuid.uuid4().hex[:6]}",
        api_key="unused",
        base_url="http://127.0.0.1:9/v1",
        overrides={"RUNCTL_CONFIG": str(config)},
    )
    worker = start_worker(deployment, tmp_path_factory.mktemp("lglogs"), concurrency=20)
    made = Producer(deployment.settings())
    yield made
    made.close()
    worker.stop()


def started(graphs: SyncLangGraphClient, sleep_s: float, thread_id: str | None = None) -> Any:
    thread_id = thread_id or graphs.threads.create()["thread_id"]
    return graphs.runs.create(thread_id, "sleeper", input={"sleep_s": sleep_s})


def status(graphs: SyncLangGraphClient, run: Any) -> str:
    return str(graphs.runs.get(run["thread_id"], run["run_id"])["status"])


def reaches(graphs: SyncLangGraphClient, run: Any, wanted: str) -> None:
    wait_for(lambda: status(graphs, run) == wanted, timeout_s=30, interval_s=0.1,
             what=f"run {run['run_id']} {wanted}")  # fmt: skip


def test_a_running_run_is_interrupted(graphs: SyncLangGraphClient, producer: Producer) -> None:
    run = started(graphs, LONG_S)
    reaches(graphs, run, "running")
    job = producer.cancel(run["thread_id"], run["run_id"], provider="graphs")
    outcome = outcome_of(producer, job.job_id)
    assert (outcome.result, outcome.final_status) == (Result.CANCELLED, "interrupted")
    assert (outcome.provider, outcome.kind) == ("graphs", "langgraph")
    assert status(graphs, run) == "interrupted"


def test_a_pending_run_behind_a_running_one_is_interrupted(
    graphs: SyncLangGraphClient, producer: Producer
) -> None:
    first = started(graphs, LONG_S)
    pending = started(graphs, LONG_S, first["thread_id"])
    reaches(graphs, first, "running")
    assert status(graphs, pending) == "pending"
    outcome = outcome_of(
        producer, producer.cancel(pending["thread_id"], pending["run_id"], provider="graphs").job_id
    )
    assert (outcome.result, outcome.final_status) == (Result.CANCELLED, "interrupted")
    assert status(graphs, first) == "running"  # only the one asked for
    producer.cancel(first["thread_id"], first["run_id"], provider="graphs")


def test_a_finished_run_is_already_terminal(
    graphs: SyncLangGraphClient, producer: Producer
) -> None:
    run = started(graphs, 0)
    reaches(graphs, run, "success")
    outcome = outcome_of(
        producer, producer.cancel(run["thread_id"], run["run_id"], provider="graphs").job_id
    )
    assert (outcome.result, outcome.final_status) == (Result.ALREADY_TERMINAL, "success")
    assert outcome.error is None


def test_a_run_that_never_existed_is_not_found(
    graphs: SyncLangGraphClient, producer: Producer
) -> None:
    thread_id = graphs.threads.create()["thread_id"]
    job = producer.cancel(thread_id, str(uuid.uuid4()), provider="graphs")
    outcome = outcome_of(producer, job.job_id)
    assert outcome.result is Result.NOT_FOUND
    assert outcome.error is not None
    assert outcome.error.http_status == 404


def test_a_rollback_deletes_the_run_and_the_outcome_says_so(
    graphs: SyncLangGraphClient, producer: Producer
) -> None:
    run = started(graphs, LONG_S)
    reaches(graphs, run, "running")
    job = producer.cancel(run["thread_id"], run["run_id"], provider="graphs-rollback")
    outcome = outcome_of(producer, job.job_id)
    assert (outcome.result, outcome.final_status) == (Result.CANCELLED, "rolled_back")
    with pytest.raises(NotFoundError):
        graphs.runs.get(run["thread_id"], run["run_id"])


def test_an_id_that_is_not_a_uuid_is_refused_before_queueing(producer: Producer) -> None:
    with pytest.raises(InvalidInput, match="run_id: must be a UUID"):
        producer.cancel(str(uuid.uuid4()), "run_abc", provider="graphs")
    with pytest.raises(InvalidInput, match="no connection named 'openai'; known: graphs"):
        producer.cancel("thread_abc", "run_abc")


def test_discovery_lists_a_threads_live_runs(
    graphs: SyncLangGraphClient, producer: Producer
) -> None:
    from orchestrator.providers import make_provider
    from orchestrator.providers.base import BuildOptions
    from orchestrator.service.discovery import discover

    first = started(graphs, LONG_S)
    pending = started(graphs, LONG_S, first["thread_id"])
    reaches(graphs, first, "running")
    provider = make_provider(producer.connections.get("graphs"), BuildOptions(2, 10, 5))
    found = list(discover(provider, [first["thread_id"]], now_s=0.0))
    assert {getattr(t, "run_id", None) for t in found} == {first["run_id"], pending["run_id"]}
    for run in (first, pending):
        producer.cancel(run["thread_id"], run["run_id"], provider="graphs")
    provider.close()

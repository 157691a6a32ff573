"""Named connections end to end: one worker fleet serving four kinds at once (a bulk file
spanning them, each connection its own rate limit), a job for a connection the workers do
not know parked and rejected, and the operator's errors (unknown connection, an id the kind
refuses, a key variable that is not set) refused before anything is queued."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from orchestrator.core.models import CancelJob, Result
from orchestrator.store import keys
from orchestrator.store.deadletters import DeadLetters
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    fresh_database,
    outcome_of,
    start_worker,
    wait_for_bulk,
)
from workers.producer import Producer
from workers.queue import CeleryQueue

pytestmark = pytest.mark.integration
DATABASE = 7
LIMITS_RPS = {"openai": 40, "azure": 30, "graphs": 20, "responses": 25}


def config_for(sim: Sim) -> str:
    root = sim.base_url.removesuffix("/v1")
    return f"""
[providers.openai]
kind = "openai-assistants"
base_url = "{sim.base_url}"
api_key_env = "OPENAI_API_KEY"
rate_limit_rps = {LIMITS_RPS["openai"]}

[providers.azure]
kind = "azure-openai-assistants"
base_url = "{root}/azure"
api_key_env = "RUNCTL_TEST_AZURE_KEY"
api_version = "2024-05-01-preview"
rate_limit_rps = {LIMITS_RPS["azure"]}

[providers.graphs]
kind = "langgraph"
base_url = "{root}/langgraph"
api_key_env = "RUNCTL_TEST_LANGGRAPH_KEY"
rate_limit_rps = {LIMITS_RPS["graphs"]}

[providers.responses]
kind = "openai-responses"
base_url = "{sim.base_url}"
api_key_env = "OPENAI_API_KEY"
rate_limit_rps = {LIMITS_RPS["responses"]}
"""


@pytest.fixture(scope="module")
def fleet(
    sim: Sim, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, Worker]]:
    where = tmp_path_factory.mktemp("fleet")
    config = where / "runctl.toml"
    config.write_text(config_for(sim))
    deployment = Deployment(
        redis_url=fresh_database(redis_url, DATABASE),
        queue=f"runctl-fleet-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides={
            "RUNCTL_CONFIG": str(config),
            "RUNCTL_TEST_AZURE_KEY": sim.api_key,
            "RUNCTL_TEST_LANGGRAPH_KEY": sim.api_key,
        },
    )
    worker = start_worker(deployment, where, concurrency=100)
    yield deployment, worker
    worker.stop()


def runctl(deployment: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    operator_env = deployment.env()
    for name in ("OPENAI_API_KEY", "RUNCTL_TEST_AZURE_KEY", "RUNCTL_TEST_LANGGRAPH_KEY"):
        operator_env.pop(name, None)  # an operator's shell holds no key to queue a cancel
    operator_env |= env
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=operator_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def seed(sim: Sim, count: int, **spec: Any) -> list[dict[str, str]]:
    body = httpx.post(f"{sim.admin_url}/runs", json={"count": count, **spec}, timeout=30)
    runs: list[dict[str, str]] = body.raise_for_status().json()["runs"]
    return runs


def test_one_fleet_one_bulk_file_four_kinds(
    sim: Sim, fleet: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deployment, _ = fleet
    lines = [
        *({"thread_id": r["thread_id"], "run_id": r["run_id"]}
          for r in seed(sim, 10, status="in_progress")),  # no provider: --provider's
        *({"thread_id": r["thread_id"], "run_id": r["run_id"], "provider": "azure"}
          for r in seed(sim, 10, status="in_progress")),
        *({"thread_id": r["thread_id"], "run_id": r["run_id"], "provider": "graphs"}
          for r in seed(sim, 10, status="in_progress", ids="uuid")),
        *({"run_id": r["run_id"], "provider": "responses"}
          for r in seed(sim, 10, status="in_progress", ids="response")),
        {"thread_id": "thread_x", "run_id": "not-a-uuid", "provider": "graphs"},
    ]  # fmt: skip
    file = tmp_path / "mixed.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # The simulator is the session's: count only the 429s this bulk job draws.
    throttled_before = sim.stats()["by_status"].get("429", 0)
    done = runctl(deployment, "bulk-cancel", str(file), "--provider", "openai", "--json",
                  "--wait")  # fmt: skip
    assert done.returncode == 0, done.stderr
    problems = [json.loads(x)["problem"] for x in done.stdout.splitlines() if '"problem"' in x]
    rule = "must be a UUID (8-4-4-4-12 hex digits) for langgraph"
    assert problems == [{"where": "line 41", "field": "thread_id", "rule": rule}]
    bulk_id = json.loads(done.stdout.splitlines()[0])["started"]
    producer = Producer(deployment.settings())
    try:
        record = wait_for_bulk(producer, bulk_id, timeout_s=60)
        outcomes = list(producer.bulks.outcomes(bulk_id))
    finally:
        producer.close()
    assert record.results == {Result.CANCELLED: 40}
    by_provider: dict[str, set[tuple[str | None, str | None]]] = {}
    for outcome in outcomes:
        by_provider.setdefault(outcome.provider, set()).add((outcome.kind, outcome.final_status))
    assert by_provider == {
        "openai": {("openai-assistants", "cancelled")},
        "azure": {("azure-openai-assistants", "cancelled")},
        "graphs": {("langgraph", "interrupted")},
        "responses": {("openai-responses", "cancelled")},
    }
    assert all(o.thread_id is None for o in outcomes if o.provider == "responses")
    throttled = sim.stats()["by_status"].get("429", 0) - throttled_before
    assert throttled == 0  # every connection kept its limit
    client = redis.Redis.from_url(deployment.redis_url)
    assert all(client.exists(keys.rate(name)) for name in LIMITS_RPS)  # a bucket each
    client.close()


def test_a_job_for_an_unknown_connection_is_parked_and_rejected(
    fleet: tuple[Deployment, Worker],
) -> None:
    deployment, _ = fleet
    settings = deployment.settings()
    queue = CeleryQueue(settings)
    job = CancelJob(provider="ghost", thread_id="thread_g", run_id="run_g")
    producer = Producer(settings)
    try:
        # A producer with another runctl.toml could queue this; ours refuses (exit 2).
        from orchestrator.store.admission import submit_many

        submit_many([job], client=producer.redis, send=queue.send,
                    inflight_ttl_s=60, max_deadline_s=600)  # fmt: skip
        outcome = outcome_of(producer, job.job_id)
        parked = DeadLetters(producer.redis).newest(10)
    finally:
        producer.close()
        queue.close()
    assert outcome.result is Result.REJECTED
    assert outcome.error is not None
    assert outcome.error.type == "unknown_connection"
    assert "no connection named 'ghost'" in outcome.error.message
    assert any("'ghost'" in entry["reason"] for entry in parked)


def test_an_unknown_provider_exits_2_naming_the_known_ones(
    fleet: tuple[Deployment, Worker],
) -> None:
    deployment, _ = fleet
    client = redis.Redis.from_url(deployment.redis_url)
    before = client.zcard(keys.ACCEPTED)
    refused = runctl(deployment, "cancel", "thread_a", "run_a", "--provider", "nope")
    assert refused.returncode == 2
    assert "no connection named 'nope'; known: openai, azure, graphs, responses" in refused.stderr
    bad_id = runctl(deployment, "cancel", str(uuid.uuid4()), "run_abc", "--provider", "graphs")
    assert bad_id.returncode == 2
    assert "run_id: must be a UUID (8-4-4-4-12 hex digits) for langgraph" in bad_id.stderr
    no_thread = runctl(deployment, "cancel", "resp_1", "--provider", "openai")
    assert no_thread.returncode == 2
    assert "needs a thread id and a run id" in no_thread.stderr
    cannot_list = runctl(deployment, "bulk-cancel", "--thread", "t", "--provider", "responses")
    assert cannot_list.returncode == 2
    assert "openai-responses cannot list runs" in cannot_list.stderr
    assert client.zcard(keys.ACCEPTED) == before  # nothing queued
    client.close()


def test_responses_are_cancelled_by_id_alone(sim: Sim, fleet: tuple[Deployment, Worker]) -> None:
    deployment, _ = fleet
    response_id = seed(sim, 1, status="in_progress", ids="response")[0]["run_id"]
    done = runctl(deployment, "cancel", response_id, "--provider", "responses", "--wait",
                  "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert (outcome["result"], outcome["provider"], outcome["thread_id"]) == (
        "cancelled", "responses", None,
    )  # fmt: skip


def test_providers_lists_and_checks_connections(sim: Sim, fleet: tuple[Deployment, Worker]) -> None:
    deployment, _ = fleet
    listed = runctl(deployment, "providers", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows["graphs"]["kind"] == "langgraph"
    assert rows["azure"]["rate_limit_rps"] == LIMITS_RPS["azure"]
    assert rows["azure"]["credential"] == "RUNCTL_TEST_AZURE_KEY (NOT SET)"
    good = runctl(deployment, "providers", "check", "azure", RUNCTL_TEST_AZURE_KEY=sim.api_key)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "azure: reachable and authenticated"
    wrong = runctl(deployment, "providers", "check", "graphs", RUNCTL_TEST_LANGGRAPH_KEY="wrong")
    assert wrong.returncode == 1
    assert "the credential was refused (403" in wrong.stderr
    assert "wrong" not in wrong.stderr.replace("went wrong", "")
    unset = runctl(deployment, "providers", "check", "responses")
    assert unset.returncode == 1
    assert "OPENAI_API_KEY is not set" in unset.stderr


def test_a_worker_refuses_to_start_naming_the_unset_variable(
    fleet: tuple[Deployment, Worker], sim: Sim
) -> None:
    deployment, _ = fleet
    env = deployment.env()
    del env["RUNCTL_TEST_LANGGRAPH_KEY"]
    started = subprocess.run(
        [sys.executable, "-m", "orchestrator", "worker"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    assert "connection graphs: RUNCTL_TEST_LANGGRAPH_KEY is not set" in started.stderr
    assert sim.api_key not in started.stderr + started.stdout

"""A run's in-flight marker left by a lost job: `--force` replaces it, and the lost job, if
it ever runs, publishes `skipped` (superseded) and sends nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.core.lifecycle import SUPERSEDED
from orchestrator.core.models import Result
from orchestrator.store import keys
from orchestrator.store.audit import audit
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    deployment_for,
    outcome_of,
    start_worker,
    wait_for_bulk,
)
from workers.producer import Producer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DATABASE = 12


@pytest.fixture
def stale(sim: Sim, redis_url: str) -> Deployment:
    return deployment_for(sim, redis_url, DATABASE)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def _lose_the_queued_message(client: redis.Redis, queue: str) -> bytes:
    """Take the one queued message away, as a lost job would be (kept to replay later)."""
    lost = client.rpop(queue)
    assert isinstance(lost, bytes)
    assert client.llen(queue) == 0
    return lost


def _runctl(deployment: Deployment, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=deployment.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_forced_cancel_replaces_a_lost_jobs_marker_and_the_lost_job_sends_nothing(
    sim: Sim, stale: Deployment, workers: list[Worker], tmp_path: Path
) -> None:
    client = redis.Redis.from_url(stale.redis_url)
    thread_id, run_id = sim.seed_one(status="in_progress")
    producer = Producer(stale.settings())
    lost_job = producer.cancel(thread_id, run_id).job_id
    lost_message = _lose_the_queued_message(client, stale.queue)

    again = producer.cancel(thread_id, run_id)
    assert again.duplicate  # without --force, the lost job's marker stands
    assert again.job_id == lost_job
    forced = json.loads(_runctl(stale, "cancel", thread_id, run_id, "--force", "--json"))
    assert forced["duplicate"] is False
    assert forced["job_id"] != lost_job

    workers.append(start_worker(stale, tmp_path))
    outcome = outcome_of(producer, forced["job_id"], timeout_s=60)
    assert outcome.result is Result.CANCELLED

    client.lpush(stale.queue, lost_message)  # the lost job turns up after all
    late = outcome_of(producer, lost_job, timeout_s=60)
    producer.close()
    assert late.result is Result.SKIPPED
    assert late.error is not None
    assert late.error.type == SUPERSEDED
    assert forced["job_id"] in late.error.message
    assert late.cancel_attempts == 0
    assert len(sim.requests(run_id=run_id, route="cancel_run")) == 1
    report = audit(client)
    assert report.clean
    assert report.published == 2
    client.close()


def test_a_forced_bulk_cancel_replaces_lost_jobs_markers(
    sim: Sim, stale: Deployment, workers: list[Worker], tmp_path: Path
) -> None:
    client = redis.Redis.from_url(stale.redis_url)
    runs = sim.seed(3, status="in_progress")
    producer = Producer(stale.settings())
    lost_job = producer.cancel(*runs[0]).job_id
    lost_message = _lose_the_queued_message(client, stale.queue)
    targets = tmp_path / "runs.jsonl"
    targets.write_text("".join(json.dumps({"thread_id": t, "run_id": r}) + "\n" for t, r in runs))

    printed = _runctl(stale, "bulk-cancel", str(targets), "--force", "--json")
    summary = next(line for line in map(json.loads, printed.splitlines()) if "queued" in line)
    assert summary["already in flight elsewhere"] == 0
    assert summary["queued"] == len(runs)
    workers.append(start_worker(stale, tmp_path))
    record = wait_for_bulk(producer, summary["bulk_id"], timeout_s=60)
    assert record.results.get(Result.CANCELLED) == len(runs)

    client.lpush(stale.queue, lost_message)
    late = outcome_of(producer, lost_job, timeout_s=60)
    producer.close()
    assert late.result is Result.SKIPPED
    assert late.error is not None
    assert late.error.type == SUPERSEDED
    assert len(sim.requests(run_id=runs[0][1], route="cancel_run")) == 1
    assert client.hexists(keys.SUPERSEDED, lost_job)
    assert audit(client).clean
    client.close()

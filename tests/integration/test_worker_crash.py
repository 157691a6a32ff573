"""A worker SIGKILLed mid-job, or just after taking a message: the job comes back to
another worker and publishes once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.store import keys
from orchestrator.store.audit import audit
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    fresh_database,
    outcome_of,
    start_worker,
    wait_for,
)
from workers.producer import Producer

pytestmark = pytest.mark.integration

VISIBILITY_TIMEOUT_S = 60.0  # the last resort; the lease brings the job back first
LEASE_S = 2.0
DEADLINE_S = 3.0
SETTLE_S = 1.5  # after the kill (at the first poll), well before the job comes back


@pytest.fixture
def crash_deployment(redis_url: str, sim: Sim) -> Deployment:
    # Its own database (kombu keeps one `unacked` hash per database, and this deployment's
    # short lease must not hand the session worker's jobs around) and a short lease, so
    # that the dead worker's job returns quickly. The job's saved progress lives for twice
    # the visibility timeout: long enough for a slow machine to start the second worker.
    return Deployment(
        redis_url=fresh_database(redis_url, 14),
        queue=f"runctl-crash-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides={
            "RUNCTL_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
            "RUNCTL_WORKER_LEASE_S": str(LEASE_S),
            "RUNCTL_DEFAULT_DEADLINE_S": str(DEADLINE_S),
            "RUNCTL_RESTORE_INTERVAL_S": "1",
        },
    )


@pytest.fixture
def workers(crash_deployment: Deployment, tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def test_a_killed_workers_job_completes_on_another_with_one_outcome(
    sim: Sim,
    crash_deployment: Deployment,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    redis_client = redis.Redis.from_url(crash_deployment.redis_url)
    sim.configure(cancel_settle_min_s=SETTLE_S, cancel_settle_max_s=SETTLE_S)
    try:
        thread_id, run_id = sim.seed_one(status="in_progress")
        first = start_worker(crash_deployment, tmp_path)
        workers.append(first)
        producer = Producer(crash_deployment.settings())
        job_id = producer.cancel(thread_id, run_id).job_id

        # Mid-job: the cancel landed and the worker is polling.
        wait_for(
            lambda: sim.requests(run_id=run_id, route="retrieve_run"),
            timeout_s=20,
            what="the first poll",
        )
        first.kill()
        assert redis_client.get(keys.outcome(job_id)) is None

        second = start_worker(crash_deployment, tmp_path)
        workers.append(second)
        outcome = outcome_of(producer, job_id, timeout_s=60)
        producer.close()
    finally:
        sim.configure(cancel_settle_min_s=0.1, cancel_settle_max_s=0.4)

    assert outcome.result is Result.CANCELLED
    assert outcome.cancel_attempts == 1  # the resumed job did not cancel again
    assert job_id in second.log()
    cancels = sim.requests(run_id=run_id, route="cancel_run")
    assert len(cancels) == 1
    entries: Any = redis_client.xrange(keys.OUTCOME_STREAM)
    published = [e for _, e in entries if e[b"job_id"].decode() == job_id]
    assert len(published) == 1
    report = audit(redis_client)
    assert report.clean
    assert report.accepted == report.published == 1
    redis_client.close()


def test_a_message_stranded_in_a_dead_workers_fetch_list_comes_back(
    sim: Sim, crash_deployment: Deployment, workers: list[Worker], tmp_path: Path
) -> None:
    # What a worker SIGKILLed between taking a message (BLMOVE) and recording it in
    # `unacked` leaves behind, built by hand: the message in a fetch list no one reads.
    redis_client = redis.Redis.from_url(crash_deployment.redis_url)
    thread_id, run_id = sim.seed_one(status="in_progress")
    producer = Producer(crash_deployment.settings())
    job_id = producer.cancel(thread_id, run_id).job_id
    dead_fetch = keys.fetching("dead-channel")
    assert redis_client.lmove(crash_deployment.queue, dead_fetch, "RIGHT", "LEFT") is not None
    entry = {"queue": crash_deployment.queue, "announced_at": time.time()}
    redis_client.hset(keys.FETCHERS, dead_fetch, json.dumps(entry))
    assert redis_client.llen(crash_deployment.queue) == 0

    worker = start_worker(crash_deployment, tmp_path)
    workers.append(worker)
    outcome = outcome_of(producer, job_id, timeout_s=60)
    producer.close()

    assert outcome.result is Result.CANCELLED
    assert redis_client.llen(dead_fetch) == 0
    assert "stranded" in worker.log()
    assert audit(redis_client).clean
    redis_client.close()

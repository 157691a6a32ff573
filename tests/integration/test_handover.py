"""A rolling restart: SIGTERM hands a worker's jobs over within the grace, losing none."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.core.models import CancelJob, Result
from orchestrator.store import keys
from orchestrator.store.audit import audit
from tests.integration.harness import (
    Sim,
    Worker,
    deployment_for,
    outcome_of,
    simulator,
    start_worker,
    wait_for,
)
from tests.integration.test_leases import DATABASE, held_by
from workers.producer import Producer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

JOBS = 1000
GRACE_S = 5.0


@pytest.fixture
def sim() -> Iterator[Sim]:
    # Cancels land 30 to 150 s after they are sent (a worker may take a minute to take a
    # thousand messages on a busy machine): some jobs finish before the signal or within
    # the grace, most are still polling when it ends.
    with simulator(cancel_settle_min_s=30.0, cancel_settle_max_s=150.0) as sim:
        yield sim


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def test_a_sigterm_hands_a_thousand_jobs_over_within_the_grace(
    sim: Sim, redis_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    deployment = deployment_for(
        sim, redis_url, DATABASE,
        RUNCTL_SHUTDOWN_GRACE_S=str(GRACE_S), RUNCTL_DEFAULT_DEADLINE_S="400",
        RUNCTL_RATE_LIMIT_RPS="0", RUNCTL_POLL_FIRST_S="2", RUNCTL_POLL_MAX_S="5",
    )  # fmt: skip
    client = redis.Redis.from_url(deployment.redis_url)
    runs = sim.seed(JOBS, status="in_progress")
    leaving = start_worker(deployment, tmp_path, concurrency=JOBS)
    workers.append(leaving)
    producer = Producer(deployment.settings())
    jobs = [CancelJob(thread_id=t, run_id=r, deadline_s=400) for t, r in runs]
    job_ids = {s.job_id for s in producer.cancel_many(jobs)}
    wait_for(
        lambda: len(held_by(client, job_ids)) + _published(client, job_ids) == JOBS,
        timeout_s=400,
        interval_s=1.0,
        what="every job taken by the first worker",
    )
    staying = start_worker(deployment, tmp_path, concurrency=JOBS)
    workers.append(staying)

    leaving_id = next(iter(held_by(client, job_ids).values()))
    leaving.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    # Handed over: none of its jobs is still held by the leaving worker (each is queued
    # again, taken by the other worker, or finished).
    wait_for(
        lambda: leaving_id not in held_by(client, job_ids).values(),
        timeout_s=120,
        interval_s=0.2,
        what="every job handed back",
    )
    handed_s = time.monotonic() - signalled_at
    assert leaving.process.wait(timeout=300) == 0
    exited_s = time.monotonic() - signalled_at
    print(
        f"\nSIGTERM: every job handed back {handed_s:.1f} s after the signal (grace "
        f"{GRACE_S:g} s); the worker exited after {exited_s:.1f} s"
    )

    # The hand-over is shown; the runs still settling need not take their minutes.
    assert sim.settle_now() > 0
    outcomes = [outcome_of(producer, job_id, timeout_s=120) for job_id in job_ids]
    producer.close()
    handed = re.search(r"handed (\d+) message\(s\) back", leaving.log())
    assert handed is not None
    assert int(handed[1]) > 0  # the grace ended with jobs still running: handed over
    assert "lease lapsed" not in staying.log()  # handed over, not recovered
    assert all(o.result is Result.CANCELLED for o in outcomes)
    assert all(o.cancel_attempts == 1 for o in outcomes)  # resumed: no second cancel
    assert len(sim.requests(route="cancel_run")) == JOBS
    entries = client.xlen(keys.OUTCOME_STREAM)
    assert entries == JOBS
    report = audit(client)
    assert report.clean
    client.close()


def _published_ids(client: redis.Redis, job_ids: set[str]) -> set[str]:
    ordered = sorted(job_ids)
    pipe = client.pipeline(transaction=False)
    for job_id in ordered:
        pipe.exists(keys.outcome(job_id))
    return {job_id for job_id, found in zip(ordered, pipe.execute(), strict=True) if found}


def _published(client: redis.Redis, job_ids: set[str]) -> int:
    return len(_published_ids(client, job_ids))

"""One worker process with default settings keeps at least 500 cancellations in flight.

Given 600 runs that stay in `cancelling`, when 600 jobs are queued to one worker with its
default concurrency, then at least 500 cancels reach the provider before any job ends,
so at least 500 jobs were waiting on their runs at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.store.outcomes import read_batch, stream_tail
from tests.integration.harness import Deployment, Sim, Worker, start_worker, wait_for
from workers.producer import Producer

pytestmark = pytest.mark.integration

RUNS = 600
IN_FLIGHT_AT_LEAST = 500
DEADLINE_S = 30.0  # generous: the claim is about holding 500 at once, not speed


@pytest.fixture
def default_worker(redis_url: str, sim: Sim, tmp_path: Path) -> Iterator[tuple[Deployment, Worker]]:
    deployment = Deployment(
        redis_url=redis_url,
        queue=f"runctl-inflight-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides={"RUNCTL_RATE_LIMIT_RPS": "0"},  # this is about holding jobs, not pacing
    )
    worker = start_worker(deployment, tmp_path, concurrency=None)
    yield deployment, worker
    worker.stop()


def test_one_default_worker_holds_500_jobs_in_flight(
    sim: Sim, default_worker: tuple[Deployment, Worker], redis_client: redis.Redis
) -> None:
    deployment, _ = default_worker
    runs = sim.seed(RUNS, status="in_progress", behavior="stuck_cancelling")
    cancels_before = sim.stats()["cancels_received"]
    producer = Producer(deployment.settings())
    start_id = stream_tail(redis_client)
    jobs = {producer.cancel(t, r, deadline_s=DEADLINE_S).job_id for t, r in runs}

    wait_for(
        lambda: sim.stats()["cancels_received"] - cancels_before >= IN_FLIGHT_AT_LEAST,
        timeout_s=DEADLINE_S,
        interval_s=0.2,
        what=f"{IN_FLIGHT_AT_LEAST} cancels",
    )
    _, published = read_batch(redis_client, start_id, block_ms=1, count=RUNS)
    assert not [o for o in published if o.job_id in jobs], "a job ended before 500 were in flight"

    results: dict[str, Result] = {}
    last_id = start_id

    def all_done() -> bool:
        nonlocal last_id
        last_id, batch = read_batch(redis_client, last_id, block_ms=500)
        results.update({o.job_id: o.result for o in batch if o.job_id in jobs})
        return len(results) == RUNS

    wait_for(all_done, timeout_s=DEADLINE_S + 60, what="every outcome")
    producer.close()
    assert set(results.values()) == {Result.TIMED_OUT}

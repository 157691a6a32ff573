"""Faults injected for real: a provider outage, a 429 storm, workers SIGKILLed mid-bulk.

Each scenario ends with the audit: every accepted job has exactly one outcome.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.devkit.embedded_redis import EmbeddedRedis, free_port
from orchestrator.service.targets import Target
from orchestrator.store.audit import audit
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    deployment_for,
    simulator,
    start_worker,
    wait_for,
    wait_for_bulk,
)
from workers.producer import Producer

pytestmark = pytest.mark.integration


@pytest.fixture
def own_sim() -> Iterator[Sim]:
    with simulator() as made:
        yield made


def done(producer: Producer, bulk_id: str) -> int:
    record = producer.bulks.get(bulk_id)
    assert record is not None
    return record.done


def assert_audited(deployment: Deployment) -> None:
    client = redis.Redis.from_url(deployment.redis_url)
    report = audit(client)
    client.close()
    assert report.clean, (report.missing[:5], list(report.duplicated)[:5])
    assert report.in_flight == []


def test_a_provider_outage_shorter_than_the_deadline_ends_in_no_error(
    own_sim: Sim, redis_url: str, tmp_path: Path
) -> None:
    outage_s = 20.0
    deployment = deployment_for(
        own_sim, redis_url, 9,
        RUNCTL_DEFAULT_DEADLINE_S="60", RUNCTL_BACKOFF_INITIAL_S="0.5", RUNCTL_BACKOFF_MAX_S="8",
    )  # fmt: skip
    worker = start_worker(deployment, tmp_path)
    try:
        runs = own_sim.seed(60, status="in_progress")
        producer = Producer(deployment.settings())
        own_sim.configure(error_5xx_rate=1.0)
        began = time.monotonic()
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs), on_problem=print)
        wait_for(
            lambda: time.monotonic() - began >= outage_s, timeout_s=outage_s + 5, interval_s=0.2
        )
        during = own_sim.stats()["requests_total"]
        own_sim.configure(error_5xx_rate=0.0)
        record = wait_for_bulk(producer, bulk_id, timeout_s=120)
        producer.close()
    finally:
        worker.stop()
    assert record.results == {Result.CANCELLED: 60}
    # Backoff, not a tight loop: about log2(20 s / 0.5 s) + 20 s / 8 s attempts per job.
    assert during <= 60 * 10
    assert_audited(deployment)


def test_a_429_storm_is_waited_out_as_asked(own_sim: Sim, redis_url: str, tmp_path: Path) -> None:
    deployment = deployment_for(own_sim, redis_url, 8, RUNCTL_RATE_LIMIT_RPS="0")
    own_sim.configure(rate_429_rate=0.5, retry_after_s=0.2)
    worker = start_worker(deployment, tmp_path)
    try:
        runs = own_sim.seed(20, status="in_progress")
        producer = Producer(deployment.settings())
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs), on_problem=print)
        record = wait_for_bulk(producer, bulk_id, timeout_s=120)
        producer.close()
    finally:
        worker.stop()
    assert record.results == {Result.CANCELLED: 20}
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in own_sim.requests():
        by_run[entry["run_id"]].append(entry)
    limited = 0
    for entries in by_run.values():
        for earlier, later in itertools.pairwise(entries):
            if earlier["status"] == 429:
                limited += 1
                assert later["t"] - earlier["t"] >= 0.2 - 0.01  # never sooner than asked
    assert limited >= 5  # the storm really happened
    assert_audited(deployment)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_workers_killed_again_and_again_lose_no_job(
    own_sim: Sim, redis_url: str, tmp_path: Path
) -> None:
    deployment = deployment_for(
        own_sim, redis_url, 7,
        RUNCTL_VISIBILITY_TIMEOUT_S="6", RUNCTL_DEFAULT_DEADLINE_S="5", RUNCTL_RATE_LIMIT_RPS="0",
    )  # fmt: skip
    rng = random.Random(7)
    workers: list[Worker] = [start_worker(deployment, tmp_path, concurrency=300) for _ in range(2)]
    total = 2000
    try:
        runs = own_sim.seed(total, status="in_progress")
        producer = Producer(deployment.settings())
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs), on_problem=print)
        for _ in range(5):
            started = time.monotonic()
            pause_s = rng.uniform(0.5, 2.5)
            wait_for(lambda: time.monotonic() - started >= pause_s, timeout_s=10, interval_s=0.1)  # noqa: B023
            victim = rng.randrange(len(workers))
            workers[victim].kill()
            workers[victim] = start_worker(deployment, tmp_path, concurrency=300)
        record = wait_for_bulk(producer, bulk_id, timeout_s=240)
        producer.close()
    finally:
        for worker in workers:
            worker.stop()
    assert record.done == record.queued == total
    assert sum(record.results.values()) == total
    assert set(record.results) <= {Result.CANCELLED, Result.TIMED_OUT}
    assert_audited(deployment)


@contextmanager
def bulk_on_own_redis(
    sim: Sim, tmp_path: Path, *, appendonly: bool = False, **env: str
) -> Iterator[tuple[EmbeddedRedis, Deployment, Worker, str]]:
    """A Redis the test may stop or fill, one worker (100 slots) on it, and a bulk job of
    300 stuck runs already queued; everything stopped on exit."""
    server = EmbeddedRedis(port=free_port(), directory=tmp_path / "redis", appendonly=appendonly)
    server.start()
    deployment = Deployment(
        redis_url=server.url,
        queue=f"runctl-own-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides={"RUNCTL_RATE_LIMIT_RPS": "50", **env},
    )
    worker = start_worker(deployment, tmp_path, concurrency=100)
    try:
        runs = sim.seed(300, status="in_progress")
        producer = Producer(deployment.settings())
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs), on_problem=print)
        producer.close()
        yield server, deployment, worker, bulk_id
    finally:
        worker.stop()
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_redis_restart_mid_bulk_loses_no_job(own_sim: Sim, tmp_path: Path) -> None:
    # A 30 s visibility timeout: what a consumer held when its connection dropped comes
    # back within the test's wait.
    with bulk_on_own_redis(
        own_sim, tmp_path, appendonly=True,
        RUNCTL_DEFAULT_DEADLINE_S="20", RUNCTL_VISIBILITY_TIMEOUT_S="30",
    ) as (server, deployment, _, bulk_id):  # fmt: skip
        wait_for(lambda: own_sim.stats()["cancels_received"] >= 100, timeout_s=30)
        server.stop()  # SIGTERM: Redis writes its AOF and exits
        server.start()  # same port, same directory: it reloads the AOF
        producer = Producer(deployment.settings())
        record = wait_for_bulk(producer, bulk_id, timeout_s=200)
        producer.close()
        assert record.done == record.queued == 300
        assert set(record.results) <= {Result.CANCELLED}
        assert_audited(deployment)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_full_redis_makes_jobs_wait_and_loses_none(own_sim: Sim, tmp_path: Path) -> None:
    with bulk_on_own_redis(own_sim, tmp_path, RUNCTL_DEFAULT_DEADLINE_S="60") as (
        server, deployment, worker, bulk_id,
    ):  # fmt: skip
        client = redis.Redis.from_url(server.url)
        producer = Producer(deployment.settings())
        wait_for(lambda: own_sim.stats()["cancels_received"] >= 50, timeout_s=30)
        # Full: every command that may grow memory is refused with OOM (noeviction).
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        wait_for(lambda: "OutOfMemoryError" in worker.log(), timeout_s=30, what="an OOM")
        done_when_full = done(producer, bulk_id)
        held = time.monotonic()
        wait_for(lambda: time.monotonic() - held >= 5, timeout_s=10, interval_s=0.2)
        done_after_5_s_full = done(producer, bulk_id)
        client.config_set("maxmemory", 0)
        record = wait_for_bulk(producer, bulk_id, timeout_s=200)
        producer.close()
        client.close()
        assert worker.process.poll() is None  # the worker rode it out
        assert done_after_5_s_full == done_when_full < 300  # nothing published while full
        assert record.done == record.queued == 300
        assert set(record.results) <= {Result.CANCELLED}
        assert_audited(deployment)

"""Metrics scraped from real worker processes during a real bulk job, and the fleet's gauges
read from Redis (`runctl metrics`, the registry `runctl serve` mounts)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from orchestrator.core.models import CancelJob, Result
from orchestrator.devkit.embedded_redis import free_port
from orchestrator.devkit.stage import spawn
from orchestrator.metrics import fleet_registry
from orchestrator.service.targets import Target
from orchestrator.store import keys
from orchestrator.store.fleet import read_fleet
from orchestrator.store.leases import Leases, WorkerCard
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    deployment_for,
    fresh_database,
    simulator,
    start_worker,
    wait_for,
    wait_for_bulk,
)
from workers.envelope import MessageFormat
from workers.producer import Producer

pytestmark = pytest.mark.integration

RUNS = 40
ID_LIKE = re.compile(r"(job|run|thread|bulk|resp)_|[0-9a-f]{16}")


def scrape(url: str) -> list[Sample]:
    text = httpx.get(url, timeout=10).raise_for_status().text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def fleet(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sim, Deployment, list[Worker]]]:
    """Two workers on this host, both told the same metrics port: the second takes the
    next free one."""
    log_dir = tmp_path_factory.mktemp("metrics")
    # Cancels settle in 2 s: the jobs are still running when the test first scrapes.
    with simulator(cancel_settle_min_s=2.0, cancel_settle_max_s=2.5) as sim:
        deployment = deployment_for(
            sim, redis_url, 9,
            RUNCTL_METRICS_PORT=str(free_port()), RUNCTL_METRICS_HOST="127.0.0.1",
        )  # fmt: skip
        workers = [start_worker(deployment, log_dir, concurrency=20) for _ in range(2)]
        try:
            yield sim, deployment, workers
        finally:
            for worker in workers:
                worker.stop()


def worker_ports(deployment: Deployment) -> list[int]:
    """The metrics ports the live workers listed with their leases."""
    client = redis.Redis.from_url(deployment.redis_url)
    try:
        now = datetime.now(UTC).timestamp()
        seen = read_fleet(client, queue_name=deployment.queue, now_s=now)
    finally:
        client.close()
    return sorted(w.card.metrics_port for w in seen.workers if w.alive and w.card.metrics_port)


def test_two_workers_on_one_host_serve_metrics_on_two_ports(
    fleet: tuple[Sim, Deployment, list[Worker]],
) -> None:
    _, deployment, workers = fleet
    ports = wait_for(lambda: p if len(p := worker_ports(deployment)) == 2 else None,
                     timeout_s=30, what="two workers listing their metrics ports")  # fmt: skip
    base = int(deployment.overrides["RUNCTL_METRICS_PORT"])
    assert ports[0] != ports[1]
    assert set(ports) <= set(range(base, base + 32))
    client = redis.Redis.from_url(deployment.redis_url)
    try:
        cards = read_fleet(client, queue_name=deployment.queue, now_s=0.0).workers
    finally:
        client.close()
    assert sorted(w.card.node for w in cards) == sorted(w.name for w in workers)
    for port in ports:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert total(samples, "runctl_worker_jobs_running") == 0  # the gevent hub serves it


def test_a_bulk_job_is_counted_across_both_workers(
    fleet: tuple[Sim, Deployment, list[Worker]],
) -> None:
    sim, deployment, _ = fleet
    told = sim.seed_one(
        status="in_progress",
        fail_cancel=[{"status": 429, "code": "rate_limit_exceeded", "retry_after_s": 0.3}],
    )
    runs = [told, *sim.seed(RUNS - 1, status="in_progress")]
    producer = Producer(deployment.settings())
    try:
        urls = [f"http://127.0.0.1:{port}/metrics" for port in worker_ports(deployment)]
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs), on_problem=print)
        # Scraped while the jobs run: each worker's hub answers between its jobs.
        wait_for(
            lambda: sum(total(scrape(url), "runctl_worker_jobs_running") for url in urls) > 0,
            timeout_s=30,
            what="a scrape during the bulk job that sees jobs running",
        )
        record = wait_for_bulk(producer, bulk_id, timeout_s=90)
    finally:
        producer.close()
    assert record.results == {Result.CANCELLED: RUNS}

    def counted() -> list[list[Sample]] | None:
        # Each worker counts an outcome just after publishing it: poll until all are in.
        scraped = [scrape(url) for url in urls]
        done = sum(total(s, "runctl_outcomes_total", result="cancelled") for s in scraped)
        return scraped if done == RUNS else None

    per_worker = wait_for(counted, timeout_s=30, what=f"{RUNS} outcomes counted")
    samples = [s for scraped in per_worker for s in scraped]
    assert all(total(s, "runctl_outcomes_total") > 0 for s in per_worker)  # both took part
    by_result = Counter[str]()
    for s in samples:
        if s.name == "runctl_outcomes_total":
            assert s.labels["provider"] == "openai"
            by_result[s.labels["result"]] += int(s.value)
    assert +by_result == {"cancelled": RUNS}
    assert total(samples, "runctl_time_to_outcome_seconds_count", provider="openai") == RUNS
    posts = total(samples, "runctl_provider_requests_total", method="POST", status_class="2xx")
    assert posts == RUNS  # one accepted cancel per run
    assert total(samples, "runctl_provider_requests_total", status_class="4xx") >= 1
    assert total(samples, "runctl_provider_throttled_total", provider="openai") >= 1
    assert total(samples, "runctl_rate_limit_pauses_total", provider="openai") >= 1
    assert total(samples, "runctl_provider_request_duration_seconds_count") == total(
        samples, "runctl_provider_requests_total"
    )
    labels = {value for s in samples for value in s.labels.values()}
    assert not [v for v in labels if ID_LIKE.search(v)], labels


def test_the_fleet_gauges_match_redis(
    fleet: tuple[Sim, Deployment, list[Worker]], redis_url: str, tmp_path: Path
) -> None:
    _, deployment, workers = fleet
    client = redis.Redis.from_url(deployment.redis_url)
    # Messages on a queue no worker reads, requested 30 s before `now_s`: nothing admitted
    # them, so no job is left for the audit.
    idle = f"{deployment.queue}-idle"
    requested_at = datetime.now(UTC) - timedelta(seconds=30)
    jobs = [CancelJob(run_id=f"r{i}", requested_at=requested_at) for i in range(3)]
    client.lpush(idle, *MessageFormat(idle).encode_many(jobs))
    try:
        seen = read_fleet(client, queue_name=idle, now_s=requested_at.timestamp() + 30)
        assert (seen.queue_depth, seen.oldest_queued_age_s) == (3, 30.0)
        assert seen.workers_alive == len(workers) == 2
        assert seen.jobs_in_flight == 0
        assert seen.bulk_jobs["finished"] == 1  # the bulk job of the test before
        settings = deployment.settings().model_copy(update={"queue_name": idle})
        text = generate_latest(fleet_registry(client, settings)).decode()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        assert total(samples, "runctl_fleet_up") == 1
        assert total(samples, "runctl_workers_alive") == 2
        assert total(samples, "runctl_queue_depth", queue=idle) == 3
        assert total(samples, "runctl_queue_oldest_age_seconds", queue=idle) >= 30
        assert total(samples, "runctl_bulk_jobs", status="finished") == 1
    finally:
        client.delete(idle)
        client.close()


def test_runctl_metrics_serves_the_fleet(
    fleet: tuple[Sim, Deployment, list[Worker]], tmp_path: Path
) -> None:
    _, deployment, _ = fleet
    port = free_port()
    argv = [sys.executable, "-m", "orchestrator", "metrics", "--port", str(port)]
    child = spawn("metrics", argv, env=deployment.env(), log_path=tmp_path / "metrics.log")
    try:

        def answered() -> list[Sample] | None:
            child.check_alive()
            try:
                return scrape(f"http://127.0.0.1:{port}/metrics")
            except httpx.TransportError:
                return None

        samples = wait_for(answered, timeout_s=30, what="runctl metrics")
    finally:
        child.stop()
    assert total(samples, "runctl_workers_alive") == 2
    assert total(samples, "runctl_queue_depth", queue=deployment.queue) == 0


def test_runctl_metrics_lists_the_workers_for_prometheus(
    fleet: tuple[Sim, Deployment, list[Worker]],
) -> None:
    _, deployment, _ = fleet
    argv = [sys.executable, "-m", "orchestrator", "metrics", "--targets"]
    done = subprocess.run(argv, env=deployment.env(), capture_output=True, timeout=60, check=True)
    [group] = json.loads(done.stdout)
    host = socket.gethostname()
    assert group["targets"] == [f"{host}:{port}" for port in worker_ports(deployment)]


def test_cards_of_workers_whose_lease_is_gone_are_forgotten(redis_url: str) -> None:
    client = redis.Redis.from_url(fresh_database(redis_url, 12))  # not the fleet's (9)
    leases = Leases(client, lease_s=5)
    card = WorkerCard(host="h", pid=1)
    leases.renew("killed", card)
    leases.renew("alive", card)
    client.delete(keys.lease("killed"))
    try:
        assert leases.forget_departed() == 1
        assert client.hkeys(keys.WORKERS) == [b"alive"]
        leases.renew("killed", card)  # only late: listed again with its next renewal
        assert sorted(client.hkeys(keys.WORKERS)) == [b"alive", b"killed"]
    finally:
        client.close()

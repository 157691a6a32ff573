"""Session fixtures: one Redis, one simulator, one worker process shared by the scenarios."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from orchestrator.devkit.stage import open_redis
from orchestrator.store import keys
from orchestrator.store.audit import AuditReport, audit
from tests.integration.harness import (
    ISSUED_KEYS,
    TEST_DATABASES,
    Deployment,
    Sim,
    Worker,
    database_url,
    simulator,
    start_worker,
    values_of,
    wait_for,
)
from workers.producer import Producer

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ExitStack() as stack:
        target = open_redis(
            stack,
            url=os.environ.get("RUNCTL_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL),
            directory=tmp_path_factory.mktemp("redis"),
        )
        client = redis.Redis.from_url(target.url)
        client.flushdb()  # tests own this database; start from nothing
        client.close()
        yield target.url


@pytest.fixture(scope="session", autouse=True)
def no_key_left_anywhere(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """After the whole suite: no API key any test used is in any Redis database the tests
    wrote to, nor in any worker, beat or simulator log."""
    yield
    secrets_used = [key.encode() for key in ISSUED_KEYS]
    found: list[str] = []
    for database in TEST_DATABASES:
        client = redis.Redis.from_url(database_url(redis_url, database))
        found += [
            f"db {database}: {key!r}"
            for key in client.scan_iter(count=1000)
            if any(s in b"".join([key, *values_of(client, key)]) for s in secrets_used)
        ]
        client.close()
    for log in tmp_path_factory.getbasetemp().rglob("*.log"):
        if any(s in log.read_bytes() for s in secrets_used):
            found.append(str(log))
    assert not found, f"an API key was left in: {found[:10]}"


@pytest.fixture(autouse=True)
def every_job_audited(redis_url: str) -> Iterator[None]:
    """After each scenario: in every database the tests use, every job accepted ends with
    exactly one outcome (`runctl audit` lists nothing). Jobs still running are waited for."""
    yield
    for database in TEST_DATABASES:
        client = redis.Redis.from_url(database_url(redis_url, database))
        try:
            if not client.exists(keys.ACCEPTED):
                continue

            def settled(client: redis.Redis = client) -> AuditReport | None:
                report = audit(client)
                return report if not report.missing and not report.in_flight else None

            report = wait_for(
                settled, timeout_s=90, interval_s=0.5, what=f"every job in db {database} to end"
            )
            assert not report.duplicated, f"db {database}: {list(report.duplicated)[:5]}"
        finally:
            client.close()


@pytest.fixture(scope="session")
def sim() -> Iterator[Sim]:
    with simulator() as made:
        yield made


@pytest.fixture(scope="session")
def deployment(redis_url: str, sim: Sim) -> Deployment:
    return Deployment(
        redis_url=redis_url,
        queue=f"runctl-test-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
    )


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def worker(deployment: Deployment, log_dir: Path) -> Iterator[Worker]:
    process = start_worker(deployment, log_dir)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def producer(deployment: Deployment, worker: Worker) -> Iterator[Producer]:
    made = Producer(deployment.settings())
    yield made
    made.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()

"""Real parts for integration tests: a Redis, the simulator over HTTP, worker processes.

Redis is the one at RUNCTL_TEST_REDIS_URL (default: the machine's, database 15); where none
answers, an embedded redis-server is started. Workers are real `runctl worker` processes,
started by `orchestrator.devkit.stage` with an environment of their own. The simulator runs
in a thread of the test process (one process less on a small machine; its admin API is the
stage's `SimulatorAdmin`).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.core.models import Outcome
from orchestrator.core.settings import Settings
from orchestrator.devkit.simulator import SimulatorConfig, start_in_thread
from orchestrator.devkit.stage import Child, SimulatorAdmin, WorkerEnv, start_workers
from orchestrator.store.bulk import BulkRecord
from workers.queue import CeleryQueue

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what or probe}")
        time.sleep(interval_s)


Sim = SimulatorAdmin
"""A simulator's admin API, for seeding runs and reading what it saw."""

TEST_SETTINGS = {
    "RUNCTL_LOG_JSON": "true",
    "RUNCTL_BACKOFF_INITIAL_S": "0.2",
    "RUNCTL_BACKOFF_MAX_S": "1.0",
    "RUNCTL_POLL_FIRST_S": "0.1",
    "RUNCTL_POLL_MAX_S": "0.5",
    "RUNCTL_DEFAULT_DEADLINE_S": "20",
    "RUNCTL_RESTORE_INTERVAL_S": "1",
}
"""Short backoffs and polls, so that scenarios settle in seconds; JSON logs to scan."""


@dataclass
class Deployment:
    """Where jobs go: a Redis, a queue, the settings workers and producers share."""

    redis_url: str
    queue: str
    api_key: str
    base_url: str
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def worker_env(self) -> WorkerEnv:
        return WorkerEnv(
            redis_url=self.redis_url,
            queue=self.queue,
            base_url=self.base_url,
            api_key=self.api_key,
            settings=TEST_SETTINGS | self.overrides,
        )

    def env(self) -> dict[str, str]:
        """A worker's (or a CLI child's) whole environment; nothing from the shell's."""
        return self.worker_env.env()

    def settings(self) -> Settings:
        """The producer's view: no API key at all, as on an operator's laptop."""
        return self.worker_env.producer_settings()


Worker = Child


def start_worker(deployment: Deployment, log_dir: Path, *, concurrency: int | None = 200) -> Worker:
    """Start a real worker process and return once it answers a control ping.

    `concurrency=None` keeps the worker's default (RUNCTL_WORKER_CONCURRENCY).
    """
    pings = CeleryQueue(deployment.settings())
    try:
        [worker] = start_workers(
            deployment.worker_env,
            [f"w{uuid.uuid4().hex[:8]}@test"],
            ready=pings.worker_answers,
            log_dir=log_dir,
            concurrency=concurrency,
        )
    finally:
        pings.close()
    return worker


ISSUED_KEYS: list[str] = []
"""Every API key a test handed to workers: the session's last check looks for each."""


@contextmanager
def simulator(**config: Any) -> Iterator[Sim]:
    """A simulator of its own, on a free port, with a fresh API key; stopped on exit.
    Cancels settle in 0.1 to 0.4 s unless `config` says otherwise."""
    api_key = new_api_key()
    settings: dict[str, Any] = {"cancel_settle_min_s": 0.1, "cancel_settle_max_s": 0.4}
    handle = start_in_thread(SimulatorConfig(api_key=api_key, **(settings | config)))
    try:
        yield Sim(handle.base_url, api_key)
    finally:
        handle.stop()


def new_api_key() -> str:
    key = f"sim-test-{secrets.token_hex(16)}"
    ISSUED_KEYS.append(key)
    return key


def outcome_of(producer: Any, job_id: str, timeout_s: float = 60.0) -> Outcome:
    outcome = producer.wait(job_id, timeout_s=timeout_s)
    assert outcome is not None, f"no outcome for {job_id} within {timeout_s} s"
    assert isinstance(outcome, Outcome)
    return outcome


def wait_for_bulk(producer: Any, bulk_id: str, *, timeout_s: float) -> BulkRecord:
    """The bulk job's record once every queued job has its outcome."""

    def finished() -> BulkRecord | None:
        record = producer.bulks.get(bulk_id)
        assert record is None or isinstance(record, BulkRecord)
        return record if record is not None and record.finished else None

    return wait_for(finished, timeout_s=timeout_s, what=f"bulk job {bulk_id}")


TEST_DATABASES = range(6, 16)
"""The Redis databases the integration tests write to: 15 for the shared deployment, the
others for scenarios that must not share kombu's `unacked` hash or a rate-limit bucket."""


def database_url(url: str, number: int) -> str:
    """The same Redis server, database `number`."""
    return url.rsplit("/", 1)[0] + f"/{number}"


def fresh_database(url: str, number: int) -> str:
    """The same Redis server, database `number`, emptied: keys a test must not share
    (kombu's `unacked` hash, the rate-limit buckets) are its own there."""
    import redis

    other = database_url(url, number)
    client = redis.Redis.from_url(other)
    client.flushdb()
    client.close()
    return other


def deployment_for(sim: Sim, redis_url: str, database: int, **env: str) -> Deployment:
    """A deployment on `sim`, in its own emptied Redis database, with its own queue."""
    return Deployment(
        redis_url=fresh_database(redis_url, database),
        queue=f"runctl-db{database}-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides=env,
    )


def every_value(client: Any) -> list[bytes]:
    """Every key name and every byte of every value in a Redis database, whatever its type."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found += [key, *values_of(client, key)]
    return found


def values_of(client: Any, key: bytes) -> list[bytes]:
    # redis-py's reply types are unions of everything; these are raw bytes (no decoding).
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [item for pair in client.hgetall(key).items() for item in pair]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        entries = client.xrange(key)
        return [item for _, fields in entries for pair in fields.items() for item in pair]
    if kind == b"none":
        return []  # deleted between the scan and the read
    raise AssertionError(f"unexpected Redis type {kind!r} at {key!r}")

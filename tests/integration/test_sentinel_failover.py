"""Redis fails over under a bulk job: the primary is SIGKILLed mid-bulk, the sentinels
promote the replica, and workers and producers (over a `sentinel://` URL) follow it.

With the default visibility timeout (3,900 s): what the new primary records as held by a
live worker that no longer holds it (an outcome and its ack lost with the primary's last
unreplicated writes, or messages a broken consumer connection could not hand back) goes
back within two sweeps (`workers.transport.Orphans`), not after the timeout. The end state
is one outcome per accepted job, which `runctl audit` checks on the new primary
(docs/reliability.md, "Redis Sentinel").
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from orchestrator.core.models import Result
from orchestrator.core.settings import Settings
from orchestrator.devkit.embedded_redis import is_reachable
from orchestrator.service.targets import Target
from orchestrator.store.audit import audit
from orchestrator.store.client import redis_client
from tests.integration.harness import (
    Deployment,
    Sim,
    simulator,
    start_worker,
    wait_for,
    wait_for_bulk,
)
from tests.integration.sentinel_group import SentinelGroup
from workers.producer import Producer

pytestmark = pytest.mark.integration

TOTAL = 2000
AFTER_THE_KILL = 50  # a second bulk job, queued by the same producer once the primary is gone


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    started = SentinelGroup(tmp_path / "redis").start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def own_sim() -> Iterator[Sim]:
    with simulator() as made:
        yield made


def test_a_command_in_flight_when_the_primary_dies_ends_on_the_new_one(
    group: SentinelGroup,
) -> None:
    # redis-py 8 reconnects a connection broken mid-command to the address it had (the dead
    # primary) for its whole retry budget, and then raises; store.client.PrimaryConnection
    # asks the sentinels again, so the command is retried on the new primary.
    assert is_reachable(group.url)  # the stage's probe, over Sentinel
    settings = Settings(redis_url=SecretStr(group.url))
    waiting, other = redis_client(settings, max_connections=1), redis_client(settings)
    got: dict[str, object] = {}

    def wait_for_handoff() -> None:
        try:
            got["value"] = waiting.blpop(["handoff"], timeout=120)
        except redis.RedisError as exc:
            got["error"] = exc

    thread = threading.Thread(target=wait_for_handoff)
    thread.start()
    old_primary = group.primary_port()
    primary = redis.Redis(port=old_primary)
    wait_for(lambda: primary.info("clients")["blocked_clients"] == 1, timeout_s=10)
    primary.close()
    group.kill(old_primary)
    wait_for(lambda: group.primary_port() != old_primary, timeout_s=30, what="a new primary")
    other.lpush("handoff", "after the failover")
    thread.join(timeout=150)
    waiting.close()
    other.close()
    assert got == {"value": (b"handoff", b"after the failover")}


def done(producer: Producer, bulk_id: str) -> int:
    """The bulk job's count of outcomes; -1 while no primary answers (a producer's call
    fails fast during the failover, and the next one after it reaches the new primary)."""
    try:
        record = producer.bulks.get(bulk_id)
    except redis.ConnectionError:
        return -1
    return 0 if record is None else record.done


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_primary_killed_mid_bulk_fails_over_and_every_job_ends_once(
    group: SentinelGroup, own_sim: Sim, tmp_path: Path
) -> None:
    deployment = Deployment(
        redis_url=group.url,
        queue=f"runctl-sentinel-{uuid.uuid4().hex[:6]}",
        api_key=own_sim.api_key,
        base_url=own_sim.base_url,
        overrides={"RUNCTL_RATE_LIMIT_RPS": "0"},  # the default visibility timeout
    )
    workers = [start_worker(deployment, tmp_path, concurrency=300) for _ in range(2)]
    settings = deployment.settings()
    try:
        runs = own_sim.seed(TOTAL + AFTER_THE_KILL, status="in_progress")
        producer = Producer(settings)
        bulk_id = producer.bulk_cancel((Target(t, r) for t, r in runs[:TOTAL]), on_problem=print)
        wait_for(lambda: done(producer, bulk_id) >= 300, timeout_s=120, what="300 done")
        old_primary = group.primary_port()
        done_at_kill = done(producer, bulk_id)
        group.kill(old_primary)
        killed_at = time.monotonic()
        # The same producer, and a new client, reach the new primary.
        wait_for(lambda: done(producer, bulk_id) > done_at_kill, timeout_s=60,
                 interval_s=0.02, what="an outcome after the kill")  # fmt: skip
        first_outcome_s = time.monotonic() - killed_at
        assert group.primary_port() != old_primary
        later_id = producer.bulk_cancel((Target(t, r) for t, r in runs[TOTAL:]), on_problem=print)
        record = wait_for_bulk(producer, bulk_id, timeout_s=200)
        later = wait_for_bulk(producer, later_id, timeout_s=60)
        all_done_s = time.monotonic() - killed_at
        producer.close()
        client = redis_client(settings)
        report = audit(client)
        client.close()
    finally:
        for worker in workers:
            worker.stop()
    cancels = Counter(entry["run_id"] for entry in own_sim.requests(method="POST"))
    print(
        f"\nfailover: first outcome {first_outcome_s:.1f} s after the primary's SIGKILL, "
        f"all {TOTAL + AFTER_THE_KILL} done {all_done_s:.1f} s after; "
        f"{sum(1 for n in cancels.values() if n > 1)} runs got a second cancel request"
    )
    assert record.done == record.queued == TOTAL
    assert later.done == later.queued == AFTER_THE_KILL
    assert set(record.results) | set(later.results) <= {Result.CANCELLED}
    # `runctl audit` on the new primary: every accepted job has exactly one outcome.
    assert report.accepted == report.published == TOTAL + AFTER_THE_KILL
    assert report.clean, (report.missing[:5], list(report.duplicated)[:5])
    assert report.in_flight == []

"""Leases: a dead worker's jobs come back in seconds, a slow one keeps its own.

The deployments here keep the default visibility timeout (3,900 s): any job that comes back
within these tests' deadlines came back through its worker's lapsed lease.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.utils.json import loads

from orchestrator.core.models import Result
from orchestrator.store import keys
from orchestrator.store.audit import audit
from orchestrator.store.leases import Leases
from tests.integration.harness import (
    Sim,
    Worker,
    deployment_for,
    outcome_of,
    simulator,
    start_worker,
    wait_for,
)
from workers.producer import Producer
from workers.transport import TRANSPORT, WORKER_ID_OPTION, Orphans

# Minutes, not seconds, on a loaded machine: workers start slowly and the leases lapse in
# real time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DATABASE = 14  # shared with test_worker_crash (each test empties it first)
SETTLE_S = 6.0  # a cancel takes this long to land: the job is mid-poll for that long


@pytest.fixture
def slow_sim() -> Iterator[Sim]:
    with simulator(cancel_settle_min_s=SETTLE_S, cancel_settle_max_s=SETTLE_S) as sim:
        yield sim


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGCONT)
        worker.stop()


def held_by(client: redis.Redis, job_ids: set[str]) -> dict[str, str]:
    """job id -> the worker id holding its message, for those of `job_ids` held now."""
    owners: dict[bytes, bytes] = client.hgetall(keys.OWNERS)  # type: ignore[assignment]
    if not owners:
        return {}
    tags = list(owners)
    records: list[Any] = client.hmget("unacked", tags)
    held: dict[str, str] = {}
    for tag, record in zip(tags, records, strict=True):
        if record is None:
            continue
        job_id = loads(record)[0]["headers"]["id"]  # the task id is the job id
        if job_id in job_ids:
            held[job_id] = owners[tag].decode()
    return held


def _worker_id_is(worker: Worker, worker_id: str) -> bool:
    """Whether `worker_id` (host:pid:nonce) is this worker process's lease id."""
    return worker_id.split(":")[1] == str(worker.process.pid)


def test_a_killed_workers_jobs_resume_on_another_within_the_lease(
    slow_sim: Sim, redis_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    # The default lease (15 s), the default visibility timeout (3,900 s).
    deployment = deployment_for(
        slow_sim, redis_url, DATABASE,
        RUNCTL_RESTORE_INTERVAL_S="10", RUNCTL_DEFAULT_DEADLINE_S="120",
    )  # fmt: skip
    client = redis.Redis.from_url(deployment.redis_url)
    slow_sim.configure(cancel_settle_min_s=20.0, cancel_settle_max_s=20.0)  # past the kill
    runs = slow_sim.seed(20, status="in_progress")
    # Both workers up before any job is sent (a worker may take 20 s to start on a busy
    # machine); each takes some of the jobs; the one holding the first job is killed.
    workers.extend(start_worker(deployment, tmp_path) for _ in range(2))
    producer = Producer(deployment.settings())
    job_ids = [producer.cancel(t, r).job_id for t, r in runs]
    wait_for(
        lambda: (
            len(held_by(client, set(job_ids))) == len(job_ids)
            and len(slow_sim.requests(route="cancel_run")) == len(job_ids)
        ),
        timeout_s=30,
        what="every job taken, its cancel sent",
    )
    first_id = held_by(client, set(job_ids))[job_ids[0]]
    first, second = sorted(workers, key=lambda w: _worker_id_is(w, first_id), reverse=True)
    killed_jobs = {j for j, h in held_by(client, set(job_ids)).items() if h == first_id}
    first.kill()
    killed_at = time.monotonic()

    def all_held_by_another() -> str | None:
        held = held_by(client, killed_jobs)
        holders = set(held.values())
        if len(held) == len(killed_jobs) and len(holders) == 1 and first_id not in holders:
            return holders.pop()
        return None

    second_id = wait_for(all_held_by_another, timeout_s=60, what="every job held by another")
    recovered_s = time.monotonic() - killed_at
    print(f"\n{len(killed_jobs)} jobs of a SIGKILLed worker held by another {recovered_s:.1f} s "
          "after the kill")  # fmt: skip

    outcomes = [outcome_of(producer, job_id, timeout_s=90) for job_id in job_ids]
    producer.close()
    assert _worker_id_is(second, second_id)
    assert "lease lapsed" in second.log()
    assert all(o.result is Result.CANCELLED for o in outcomes)
    assert all(o.cancel_attempts == 1 for o in outcomes)  # resumed: no second cancel
    for _, run_id in runs:
        assert len(slow_sim.requests(run_id=run_id, route="cancel_run")) == 1
    report = audit(client)
    assert report.clean
    assert report.published == len(job_ids)
    client.close()


def _lease_ttl_ms(client: redis.Redis, worker_id: str) -> int:
    return int(client.pttl(keys.lease(worker_id)))


def test_a_stopped_worker_keeps_its_jobs_for_its_lease_and_loses_them_after(
    slow_sim: Sim, redis_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    lease_s = 3.0
    deployment = deployment_for(
        slow_sim, redis_url, DATABASE,
        RUNCTL_WORKER_LEASE_S=str(lease_s), RUNCTL_RESTORE_INTERVAL_S="1",
        RUNCTL_DEFAULT_DEADLINE_S="120",
    )  # fmt: skip
    client = redis.Redis.from_url(deployment.redis_url)
    thread_id, run_id = slow_sim.seed_one(status="in_progress")
    slow_sim.configure(cancel_settle_min_s=15.0, cancel_settle_max_s=15.0)  # past both stops
    workers.extend(start_worker(deployment, tmp_path) for _ in range(2))
    producer = Producer(deployment.settings())
    job_id = producer.cancel(thread_id, run_id).job_id
    holder = wait_for(lambda: held_by(client, {job_id}).get(job_id), timeout_s=30, what="taken")
    first, second = sorted(workers, key=lambda w: _worker_id_is(w, holder), reverse=True)

    # Stopped for most of its lease: the lease runs down, but no sweep may move the job.
    first.process.send_signal(signal.SIGSTOP)
    wait_for(lambda: 0 < _lease_ttl_ms(client, holder) < 800, timeout_s=10, what="lease low")
    assert held_by(client, {job_id}) == {job_id: holder}
    first.process.send_signal(signal.SIGCONT)
    wait_for(lambda: _lease_ttl_ms(client, holder) > 2000, timeout_s=10, what="lease renewed")
    assert held_by(client, {job_id}) == {job_id: holder}
    assert job_id not in second.log()

    # Stopped past its lease: the second worker takes the job and resumes it.
    first.process.send_signal(signal.SIGSTOP)
    new_holder = wait_for(
        lambda: (h := held_by(client, {job_id}).get(job_id)) != holder and h,
        timeout_s=30,
        what="the job taken by the second worker",
    )
    assert job_id in second.log()
    first.process.send_signal(signal.SIGCONT)  # both now run the job; one outcome stands

    outcome = outcome_of(producer, job_id, timeout_s=60)
    producer.close()
    assert new_holder != holder
    assert outcome.result is Result.CANCELLED
    assert outcome.cancel_attempts == 1  # the second worker did not cancel again
    assert len(slow_sim.requests(run_id=run_id, route="cancel_run")) == 1
    entries: Any = client.xrange(keys.OUTCOME_STREAM)
    assert [e[b"job_id"].decode() for _, e in entries] == [job_id]
    # Both acknowledged, in either order: nothing left held, nothing queued again.
    wait_for(lambda: client.hlen("unacked") == 0, timeout_s=30, what="both acks")
    assert client.hlen(keys.OWNERS) == 0
    assert client.llen(deployment.queue) == 0
    assert audit(client).clean
    client.close()


def _consumer(url: str, worker_id: str) -> Any:
    return Connection(url, transport=TRANSPORT, transport_options={WORKER_ID_OPTION: worker_id})


def test_a_late_ack_leaves_the_new_holders_record_alone(redis_url: str) -> None:
    # kombu-level: a message returned from a lapsed worker and taken by another, under the
    # same delivery tag; the first worker's late ack must not erase the second's record.
    url = redis_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    name = f"lease-{uuid.uuid4().hex[:6]}"
    queue = Queue(name, Exchange(name), routing_key=name)
    leases = Leases(client, lease_s=5)
    with _consumer(url, "old") as old, _consumer(url, "new") as new:
        new_channel = new.default_channel
        producer = new.Producer()
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
        leases.renew("old")
        taken = queue(old.default_channel).get(no_ack=False)
        assert taken is not None
        tag = str(taken.delivery_tag)
        assert client.hget(keys.OWNERS, tag) == b"old"

        assert new_channel.qos.return_lapsed(leases) == 0  # its lease holds: left alone
        assert client.hexists("unacked", tag)
        leases.release("old")
        assert new_channel.qos.return_lapsed(leases) == 1
        assert not client.hexists("unacked", tag)

        again = queue(new_channel).get(no_ack=False)
        assert again is not None
        assert again.delivery_tag == tag
        assert again.delivery_info.get("redelivered") or again.headers.get("redelivered")
        assert client.hget(keys.OWNERS, tag) == b"new"
        taken.ack()  # late, from the worker that lost it
        assert client.hexists("unacked", tag)
        assert client.hget(keys.OWNERS, tag) == b"new"
        again.ack()
        assert not client.hexists("unacked", tag)
        assert not client.hexists(keys.OWNERS, tag)
    client.flushdb()
    client.close()


def test_a_message_redis_rolled_back_to_a_live_worker_comes_back_in_two_sweeps(
    redis_url: str,
) -> None:
    # A failover (or an older AOF) can roll Redis back to before a live worker's ack: the
    # message is in `unacked` again, under a lease that is alive. Orphans returns it; a
    # message the worker still holds is never taken (the control).
    url = redis_url.rsplit("/", 1)[0] + f"/{DATABASE}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    name = f"orphan-{uuid.uuid4().hex[:6]}"
    queue = Queue(name, Exchange(name), routing_key=name)
    Leases(client, lease_s=30).renew("me")
    orphans = Orphans(client, "me")
    with _consumer(url, "me") as me:
        channel = me.default_channel
        for n in (1, 2):
            me.Producer().publish({"n": n}, exchange=queue.exchange, routing_key=name,
                                  declare=[queue])  # fmt: skip
        held, acked = queue(channel).get(no_ack=False), queue(channel).get(no_ack=False)
        assert held is not None
        assert acked is not None
        tag = str(acked.delivery_tag)
        before = client.hget("unacked", tag), client.zscore("unacked_index", tag)
        acked.ack()
        # Redis loses the ack, as a replica promoted before it arrived would have.
        client.hset("unacked", tag, before[0] or b"")
        client.zadd("unacked_index", {tag: before[1] or 0.0})
        client.hset(keys.OWNERS, tag, "me")
        assert orphans.sweep(channel.qos) == 0  # seen once: it may be on its way in
        assert orphans.sweep(channel.qos) == 1
        assert not client.hexists("unacked", tag)
        assert client.llen(name) == 1  # back in its queue
        assert client.hget(keys.OWNERS, str(held.delivery_tag)) == b"me"  # still held: kept
        assert orphans.sweep(channel.qos) == 0
        held.ack()
    client.flushdb()
    client.close()


BUSY_HUB = """
from gevent import monkey; monkey.patch_all()
import sys, threading, time
import redis
from orchestrator.store.leases import Leases
from workers.heartbeat import Heartbeat

url, worker_id, kind = sys.argv[1:]
make = lambda: Leases(redis.Redis.from_url(url, socket_timeout=1), lease_s=1.0)
make().renew(worker_id)
if kind == "os-thread":
    beat = Heartbeat(make, worker_id, every_s=0.2)
    beat.start()
else:  # what threading.Thread gives under gevent: a greenlet
    def loop():
        leases = make()
        while True:
            leases.renew(worker_id)
            time.sleep(0.2)
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.5)
print("busy", flush=True)
started = time.monotonic()
while time.monotonic() - started < 4.0:  # a hub that never yields: CPU-bound work
    sum(range(1000))
print("done", flush=True)
if kind == "os-thread":
    beat.stop()
"""


@pytest.mark.parametrize(("kind", "keeps_its_lease"), [("os-thread", True), ("greenlet", False)])
def test_the_heartbeat_outlives_a_hub_that_never_yields(
    redis_url: str, kind: str, keeps_its_lease: bool
) -> None:
    # The greenlet case is the control: it shows the check can fail.
    client = redis.Redis.from_url(redis_url)
    worker_id = f"busy-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [sys.executable, "-c", BUSY_HUB, redis_url, worker_id, kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "busy"
    done = threading.Event()

    def wait_done() -> None:
        assert process.stdout is not None
        process.stdout.readline()
        done.set()

    threading.Thread(target=wait_done, daemon=True).start()
    lapsed = False
    while not done.is_set():
        lapsed = lapsed or not client.exists(keys.lease(worker_id))
        done.wait(0.05)
    process.wait(timeout=30)
    process.stdout.close()
    client.delete(keys.lease(worker_id))
    client.close()
    assert process.returncode == 0
    assert lapsed is not keeps_its_lease

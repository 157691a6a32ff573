"""Worker leases: who holds which message, and whether that worker is still alive.

Each worker process has an id and a lease key (`runctl:lease:{id}`, with a TTL) that it
renews every fifth of `RUNCTL_WORKER_LEASE_S` from a thread of its own (workers/heartbeat);
its card (`WorkerCard`: where it runs, its metrics port) is listed in `runctl:workers`
while the lease is held, so the fleet can be listed without a scan.
Each message a worker takes is recorded as held by it (`runctl:owners`, delivery tag -> id)
in the same MULTI that records it in kombu's `unacked` hash (workers/transport.py). A
message whose holder's lease has expired is put back on its queue by any live worker's
sweep; the script that does it checks the lease and the holder in one atomic step, so a
message is never taken from a worker whose lease is alive. Expiry is Redis's clock, so
workers' clocks need not agree.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import defaultdict

import redis
from pydantic import BaseModel, ConfigDict

from orchestrator.store import keys

RENEWALS_PER_LEASE = 5  # a worker may miss four renewals in a row and keep its lease


class WorkerCard(BaseModel):
    """What a worker process says of itself in `runctl:workers`, renewed with its lease."""

    model_config = ConfigDict(frozen=True)

    host: str
    pid: int
    node: str = ""  # Celery's node name (NAME@host)
    metrics_port: int | None = None  # where its /metrics answers; None: not served
    started_at: float = 0.0  # epoch s, the worker's clock

    @classmethod
    def of_this_process(cls, *, node: str = "", metrics_port: int | None = None) -> WorkerCard:
        return cls(host=socket.gethostname(), pid=os.getpid(), node=node,
                   metrics_port=metrics_port, started_at=time.time())  # fmt: skip


def new_worker_id() -> str:
    """A process's id, unique even when a restarted worker reuses its name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def renew_every_s(lease_s: float) -> float:
    """How often a worker renews a lease of `lease_s`."""
    return lease_s / RENEWALS_PER_LEASE


class Leases:
    """The lease keys and the owners hash, over one Redis client."""

    def __init__(self, client: redis.Redis, *, lease_s: float) -> None:
        self._redis = client
        self._lease_ms = max(1, int(lease_s * 1000))

    def renew(self, worker_id: str, card: WorkerCard | None = None) -> None:
        """Hold (or take again) `worker_id`'s lease for another `lease_s`; with a `card`,
        list the worker in `runctl:workers` unless it is listed (one round trip: a card
        dropped while the lease lapsed, or lost with Redis, comes back at the next renewal)."""
        if card is None:
            self._redis.set(keys.lease(worker_id), "1", px=self._lease_ms)
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.lease(worker_id), "1", px=self._lease_ms)
        pipe.hsetnx(keys.WORKERS, worker_id, card.model_dump_json())
        pipe.execute()

    def release(self, worker_id: str) -> None:
        """End the lease now: anything the worker still holds goes back at the next sweep."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(keys.lease(worker_id))
        pipe.hdel(keys.WORKERS, worker_id)
        pipe.execute()

    def forget_departed(self) -> int:
        """Unlist the workers whose lease is gone (killed, never released); how many went.
        One that was only late renews its lease and lists its card again."""
        listed: list[bytes] = self._redis.hkeys(keys.WORKERS)  # type: ignore[assignment]
        if not listed:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for worker_id in listed:
            pipe.exists(keys.lease(keys.text(worker_id)))
        gone = [w for w, live in zip(listed, pipe.execute(), strict=True) if not live]
        return int(self._redis.hdel(keys.WORKERS, *gone)) if gone else 0

    def close(self) -> None:
        self._redis.close()

    def lapsed_holdings(self) -> dict[str, list[str]]:
        """Worker id -> the delivery tags it holds, for every worker whose lease is gone."""
        owners: dict[bytes, bytes] = self._redis.hgetall(keys.OWNERS)  # type: ignore[assignment]
        held: dict[str, list[str]] = defaultdict(list)
        for tag, worker_id in owners.items():
            held[keys.text(worker_id)].append(keys.text(tag))
        pipe = self._redis.pipeline(transaction=False)
        for holder in held:
            pipe.exists(keys.lease(holder))
        alive = pipe.execute()
        return {w: tags for (w, tags), live in zip(held.items(), alive, strict=True) if not live}

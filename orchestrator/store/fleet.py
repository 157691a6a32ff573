"""The fleet at a glance, read from Redis in two round trips: workers alive, jobs in
flight, the queue's depth and the age of its oldest message, bulk jobs by status, dead
letters and alerts. For `/metrics` of `runctl serve` and `runctl metrics`, and the API's
fleet view.

Cheap at any size of the keyspace: no KEYS and no SCAN. Workers are listed from their
cards (`runctl:workers`, written with each lease renewal) and counted alive by their lease
keys; bulk jobs from their index (`runctl:bulks`). The cost grows with the number of
workers and of bulk jobs kept, never with the number of jobs or outcomes.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from orchestrator.store import bulk, keys
from orchestrator.store.leases import WorkerCard

BULK_STATUSES = ("enqueueing", "running", "finished", "aborted")
"""The statuses bulk jobs are counted by: a running bulk job whose every queued job has
its outcome is `finished`."""


class FleetWorker(BaseModel):
    """One worker process listed in `runctl:workers`."""

    model_config = ConfigDict(frozen=True)

    worker_id: str
    alive: bool  # its lease is held now
    card: WorkerCard


class Fleet(BaseModel):
    """Where the fleet stands at `now_s`."""

    model_config = ConfigDict(frozen=True)

    workers_alive: int
    jobs_in_flight: int  # messages held by workers (taken, not yet acknowledged)
    queue_depth: int  # messages waiting in the queue
    oldest_queued_age_s: float | None  # of the next message to be taken; None: none, or unknown
    dead_letters: int = 0  # refused messages kept (the newest 10,000)
    alerts: int = 0  # entries in the alerts stream
    tracked_runs: int = 0  # runs the enforcer watches
    bulk_jobs: dict[str, int] = {}  # bulk jobs kept, by status (every one of BULK_STATUSES)
    workers: tuple[FleetWorker, ...] = ()  # every worker listed, alive or not


def read_fleet(client: redis.Redis, *, queue_name: str, now_s: float) -> Fleet:
    """The fleet as Redis sees it now; `now_s` (epoch s) dates the oldest message."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.WORKERS)
    pipe.hlen(keys.OWNERS)
    pipe.llen(queue_name)
    pipe.lindex(queue_name, -1)  # workers take from this end (BLMOVE ... RIGHT)
    pipe.llen(keys.DEAD_LETTERS)
    pipe.xlen(keys.ALERTS)
    pipe.zcard(keys.TRACKED)
    pipe.zrange(keys.BULKS, 0, -1)
    cards, held, depth, next_message, dead, alerts, tracked, bulk_ids = pipe.execute()
    worker_ids = [keys.text(w) for w in cards]
    bulk_names = [keys.text(b) for b in bulk_ids]
    pipe = client.pipeline(transaction=False)
    for worker_id in worker_ids:
        pipe.exists(keys.lease(worker_id))
    for bulk_id in bulk_names:
        pipe.hmget(keys.bulk(bulk_id), bulk.STATUS_FIELD, bulk.FINISHED_FIELD,
                   bulk.DONE_FIELD, bulk.QUEUED_FIELD)  # fmt: skip
    replies = pipe.execute()
    leases, records = replies[: len(worker_ids)], replies[len(worker_ids) :]
    workers = tuple(
        FleetWorker(worker_id=w, alive=bool(live), card=WorkerCard.model_validate_json(raw))
        for w, live, raw in zip(worker_ids, leases, cards.values(), strict=True)
    )
    return Fleet(
        workers_alive=sum(w.alive for w in workers),
        jobs_in_flight=int(held),
        queue_depth=int(depth),
        oldest_queued_age_s=_age_s(next_message, now_s),
        dead_letters=int(dead),
        alerts=int(alerts),
        tracked_runs=int(tracked),
        bulk_jobs=_by_status(records),
        workers=workers,
    )


def _by_status(records: list[list[bytes | None]]) -> dict[str, int]:
    counts = dict.fromkeys(BULK_STATUSES, 0)
    for status, finished, done, queued in records:
        if status is None:
            continue  # its record expired before the index was trimmed
        name = keys.text(status)
        if name == bulk.BulkStatus.RUNNING and (
            finished is not None or int(done or 0) >= int(queued or 0)
        ):
            name = "finished"
        counts[name] = counts.get(name, 0) + 1
    return counts


def _age_s(message: bytes | None, now_s: float) -> float | None:
    """How long ago the job in a queued message was requested; None when the queue is empty
    or the message carries no job (an enforcement pass, a foreign message)."""
    requested_at = _requested_at(message)
    return None if requested_at is None else max(0.0, now_s - requested_at)


def _requested_at(message: bytes | None) -> float | None:
    """The `requested_at` (epoch s) of the job in a Celery protocol-v2 message in kombu's
    envelope: the body is base64 of `[args, kwargs, embed]`, and a cancel's one argument
    (or its `job` keyword) is the job (workers/envelope.py)."""
    if message is None:
        return None
    try:
        envelope: Any = json.loads(message)
        args, kwargs = json.loads(base64.b64decode(envelope["body"]))[:2]
        job = args[0] if args else kwargs["job"]
        return datetime.fromisoformat(job["requested_at"]).timestamp()
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        return None

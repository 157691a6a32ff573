"""The fleet at a glance, read from Redis: workers alive, jobs in flight, the queue.

Workers alive are the live lease keys (`keys.lease`, renewed by every worker process);
jobs in flight are the progress hashes of started jobs (`keys.job_state`); the queue's
depth is its list length, and its oldest message's age comes from the job it carries.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from orchestrator.store import keys

SCAN_COUNT = 1000


class Fleet(BaseModel):
    model_config = ConfigDict(frozen=True)

    workers_alive: int
    jobs_in_flight: int
    queue_depth: int
    oldest_queued_age_s: float | None  # None: the queue is empty (or its tail unreadable)


def read_fleet(client: redis.Redis, *, queue_name: str, now_s: float) -> Fleet:
    """The fleet's numbers now (`now_s`, epoch seconds): a few SCANs and two list reads."""
    workers = _count(client, keys.lease("*"))
    in_flight = _count(client, keys.job_state("*"))
    pipe = client.pipeline(transaction=False)
    pipe.llen(queue_name)
    pipe.lindex(queue_name, -1)  # workers take from the tail: the oldest message
    depth, tail = pipe.execute()
    requested_at = _requested_at(tail)
    age = None if requested_at is None else max(0.0, now_s - requested_at)
    return Fleet(
        workers_alive=workers, jobs_in_flight=in_flight, queue_depth=int(depth),
        oldest_queued_age_s=age,
    )  # fmt: skip


def _count(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=SCAN_COUNT))


def _requested_at(raw: bytes | None) -> float | None:
    """The `requested_at` of the job in a kombu envelope (Celery protocol 2, JSON body)."""
    if raw is None:
        return None
    try:
        envelope: dict[str, Any] = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        job = body[0][0] if body[0] else body[1]["job"]
        return datetime.fromisoformat(job["requested_at"]).timestamp()
    except (ValueError, KeyError, IndexError, TypeError):
        return None

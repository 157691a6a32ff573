"""Bulk jobs: many cancels under one id, with a durable record, abort, and a report.

The record is a Redis hash (`keys.bulk`): counters the enqueuer adds batch by batch, and
per-result counters the publish script adds as each job's outcome lands (`outcomes.py`),
so `status` is one HGETALL however large the bulk job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from orchestrator.core.models import Outcome, Result
from orchestrator.store import keys, scripts
from orchestrator.store.keys import text

# The bulk record's fields that other scripts touch: this module owns every field name, and
# hands these to the scripts that read or count them (publish, begin, reserve).
STATUS_FIELD = "status"
RATE_FIELD = "rate_limit_rps"
DONE_FIELD = "done"
QUEUED_FIELD = "queued"
FINISHED_FIELD = "finished"  # set once, when the bulk-finished event is emitted
_RESULT_PREFIX = "result:"


def result_field(result: Result) -> str:
    """The record's counter of outcomes with `result`."""
    return f"{_RESULT_PREFIX}{result.value}"


class BulkStatus(StrEnum):
    ENQUEUEING = "enqueueing"  # targets are still being read and queued
    RUNNING = "running"  # everything is queued; outcomes are arriving
    ABORTED = "aborted"  # nothing more is sent; jobs not yet done end `skipped`


class ElsewhereRow(BaseModel):
    """A run of the bulk job that another job (`job_id`) was already cancelling: it was not
    queued again, and its outcome is that job's."""

    model_config = ConfigDict(frozen=True)

    provider: str = "openai"
    thread_id: str | None = None
    run_id: str
    job_id: str


class BulkRecord(BaseModel):
    """Where a bulk job stands. `seen` = queued + repeated + in_flight_elsewhere."""

    model_config = ConfigDict(frozen=True)

    bulk_id: str
    status: BulkStatus
    created_at: datetime
    requested_by: str = ""
    source: str = ""
    rate_limit_rps: float | None = None
    seen: int = 0  # valid targets read so far
    queued: int = 0  # jobs queued
    repeated: int = 0  # listed again in this bulk job: cancelled once
    in_flight_elsewhere: int = 0  # a job from elsewhere already had the run
    invalid: int = 0  # lines or threads refused
    done: int = 0  # outcomes published
    results: dict[Result, int] = {}
    enqueue_failed: str = ""  # why enqueueing stopped early, if it did

    @property
    def finished(self) -> bool:
        return self.status is not BulkStatus.ENQUEUEING and self.done >= self.queued


def bulk_status(client: redis.Redis, bulk_id: str) -> BulkStatus | None:
    """One HGET: the bulk job's status, or None when it has no record."""
    raw = client.hget(keys.bulk(bulk_id), STATUS_FIELD)
    return None if raw is None else BulkStatus(text(raw))


def new_bulk_id() -> str:
    return f"bulk_{uuid.uuid4().hex}"


class BulkStore:
    """The bulk records in Redis."""

    def __init__(self, client: redis.Redis, *, keep_s: int) -> None:
        self._redis = client
        self._keep_s = keep_s
        self._first_sightings = scripts.register(client, "bulk_first_sightings")
        self._enqueued = scripts.register(client, "bulk_enqueued")

    def create(
        self, bulk_id: str, *, source: str, requested_by: str, rate_limit_rps: float | None
    ) -> None:
        mapping: dict[str | bytes, str | float] = {
            STATUS_FIELD: BulkStatus.ENQUEUEING.value,
            "created_at": datetime.now(UTC).isoformat(),
            "source": source[:500],
            "requested_by": requested_by[:200],
        }
        if rate_limit_rps:
            mapping[RATE_FIELD] = rate_limit_rps
        now_s = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.bulk(bulk_id), mapping=mapping)  # type: ignore[arg-type]
        pipe.expire(keys.bulk(bulk_id), self._keep_s)
        pipe.zadd(keys.BULKS, {bulk_id: now_s})  # the index the fleet counts by status
        pipe.zremrangebyscore(keys.BULKS, "-inf", now_s - self._keep_s)
        pipe.execute()

    def get(self, bulk_id: str) -> BulkRecord | None:
        raw = self._redis.hgetall(keys.bulk(bulk_id))
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        results = {
            Result(name.removeprefix(_RESULT_PREFIX)): int(count)
            for name, count in fields.items()
            if name.startswith(_RESULT_PREFIX)
        }
        counters = ("seen", QUEUED_FIELD, "repeated", "in_flight_elsewhere", "invalid", DONE_FIELD)
        rate = fields.get(RATE_FIELD)
        return BulkRecord(
            bulk_id=bulk_id,
            status=BulkStatus(fields[STATUS_FIELD]),
            created_at=datetime.fromisoformat(fields["created_at"]),
            requested_by=fields.get("requested_by", ""),
            enqueue_failed=fields.get("enqueue_failed", ""),
            source=fields.get("source", ""),
            rate_limit_rps=float(rate) if rate else None,
            results=results,
            **{name: int(fields.get(name, 0)) for name in counters},
        )

    def abort(self, bulk_id: str) -> BulkRecord | None:
        """Stop a bulk job: nothing more is sent for it. None if there is no such job; a
        finished one is left as it is (its record is returned unchanged)."""
        record = self.get(bulk_id)
        if record is None or record.finished:
            return record
        self._redis.hset(keys.bulk(bulk_id), STATUS_FIELD, BulkStatus.ABORTED.value)
        return self.get(bulk_id)

    def first_sightings(self, bulk_id: str, runs: Sequence[tuple[str, ...]]) -> list[bool]:
        """For each run (the parts that name it: connection, thread, run id), whether this
        bulk job sees the run for the first time."""
        if not runs:
            return []
        members = [":".join(parts) for parts in runs]
        reply: Any = self._first_sightings(keys=[keys.bulk_seen(bulk_id)], args=members)
        self._redis.expire(keys.bulk_seen(bulk_id), self._keep_s)
        return [bool(flag) for flag in reply]

    def add(self, bulk_id: str, *, elsewhere: Sequence[ElsewhereRow] = (), **counts: int) -> None:
        """Add to the enqueue counters, and keep the rows of runs another job was already
        cancelling (for the report): one atomic round trip, so the two always agree."""
        pipe = self._redis.pipeline(transaction=True)
        for name, value in counts.items():
            if value:
                pipe.hincrby(keys.bulk(bulk_id), name, value)
        if elsewhere:
            pipe.rpush(keys.bulk_elsewhere(bulk_id), *(row.model_dump_json() for row in elsewhere))
            pipe.expire(keys.bulk_elsewhere(bulk_id), self._keep_s)
        pipe.execute()

    def elsewhere(self, bulk_id: str) -> Iterator[ElsewhereRow]:
        """The runs of the bulk job that another job was already cancelling."""
        for row in self._rows(keys.bulk_elsewhere(bulk_id)):
            yield ElsewhereRow.model_validate_json(row)

    def enqueued(self, bulk_id: str, *, failure: str = "") -> None:
        """Enqueueing ended (all queued, or `failure`): the bulk job runs, unless it was
        aborted meanwhile (one atomic step, so an abort in between is never overwritten)."""
        self._enqueued(
            keys=[keys.bulk(bulk_id), keys.bulk_seen(bulk_id), keys.BULK_FINISHED],
            args=[datetime.now(UTC).isoformat(), failure[:300], bulk_id],
        )

    def status(self, bulk_id: str) -> BulkStatus | None:
        return bulk_status(self._redis, bulk_id)

    def outcomes(self, bulk_id: str) -> Iterator[Outcome]:
        """Every published outcome of the bulk job, in the order they landed."""
        for row in self._rows(keys.bulk_outcomes(bulk_id)):
            yield Outcome.model_validate_json(row)

    def recent(self, limit: int) -> list[BulkRecord]:
        """The newest `limit` bulk jobs still on record (a SCAN: for a dashboard, not a
        hot path)."""
        prefix = keys.bulk("")
        ids = {
            text(key).removeprefix(prefix)
            for key in self._redis.scan_iter(match=keys.bulk("bulk_*"), count=1000)
            if ":" not in text(key).removeprefix(prefix)
        }
        records = [r for r in (self.get(bulk_id) for bulk_id in ids) if r is not None]
        return sorted(records, key=lambda r: r.created_at, reverse=True)[:limit]

    def _rows(self, key: str, chunk: int = 1000) -> Iterator[bytes]:
        """A list's items, `chunk` per round trip: never one huge reply."""
        start = 0
        while True:
            rows: Any = self._redis.lrange(key, start, start + chunk - 1)
            yield from rows
            if len(rows) < chunk:
                return
            start += chunk

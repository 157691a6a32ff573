"""Publishing outcomes exactly once, the per-job progress that makes resuming possible, and
reading outcomes back (one job's, or the stream followed).

The outcome key is the guard: a Lua script sets it, appends to the stream, announces on the
channel and releases the run's in-flight marker in one atomic step, and does nothing at all
when the key already exists. A job redelivered after a crash therefore publishes at most
once, however many workers ran it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis
import redis.asyncio
from redis.typing import EncodableT, FieldT

from orchestrator.core.lifecycle import Progress
from orchestrator.core.models import CancelJob, Outcome
from orchestrator.store import bulk, keys, scripts
from orchestrator.store.keys import text

_NO_BULK = f"{keys.PREFIX}:no-bulk"  # a key no script writes: scripts must name every key


def _bulk_key(bulk_id: str | None) -> str:
    return keys.bulk(bulk_id) if bulk_id else _NO_BULK


@dataclass(frozen=True)
class Superseded:
    """Another job took over this job's run (its in-flight marker) before it began."""

    by_job_id: str


class OutcomeStore:
    """The Redis side of a job: its progress while in flight, its outcome once done."""

    def __init__(
        self, client: redis.Redis, *, stream_maxlen: int, keep_s: int, progress_keep_s: int
    ) -> None:
        self._redis = client
        self._stream_maxlen = stream_maxlen
        self._keep_s = keep_s
        self._progress_keep_s = progress_keep_s
        self._publish = scripts.register(client, "publish")
        self._begin = scripts.register(client, "begin")

    def published(self, job_id: str) -> Outcome | None:
        raw = self._redis.get(keys.outcome(job_id))
        return None if raw is None else Outcome.model_validate_json(raw)

    def publish(self, outcome: Outcome, *, provider: str) -> bool:
        """Publish `outcome` unless its job already has one; True when this call published."""
        body = outcome.model_dump_json()
        entry = {
            "job_id": outcome.job_id,
            "thread_id": outcome.thread_id or "",
            "run_id": outcome.run_id,
            "result": outcome.result.value,
            "provider": provider,
            "outcome": body,
        }
        flat: list[str | int] = [item for pair in entry.items() for item in pair]
        bulk_id = outcome.bulk_id
        published = self._publish(
            keys=[
                keys.outcome(outcome.job_id),
                keys.OUTCOME_STREAM,
                keys.job_state(outcome.job_id),
                keys.inflight(provider, outcome.thread_id, outcome.run_id),
                _bulk_key(bulk_id),
                keys.bulk_outcomes(bulk_id) if bulk_id else _NO_BULK,
                keys.bulk_elsewhere(bulk_id) if bulk_id else _NO_BULK,
                keys.BULK_FINISHED,
            ],
            args=[
                body,
                self._keep_s,
                self._stream_maxlen,
                keys.OUTCOME_CHANNEL,
                outcome.job_id,
                bulk.result_field(outcome.result),
                1 if bulk_id else 0,
                bulk_id or "",
                bulk.DONE_FIELD,
                bulk.QUEUED_FIELD,
                bulk.STATUS_FIELD,
                bulk.FINISHED_FIELD,
                bulk.BulkStatus.ENQUEUEING.value,
                *flat,
            ],
        )
        return bool(published)

    def begin(self, job: CancelJob, now_s: float) -> Outcome | Progress | Superseded | None:
        """One round trip at a job's start: its outcome if it has one; None if its bulk job
        was aborted; Superseded if another job took over its run (`cancel --force`); else
        its progress (saved now, with `now_s` as its start, if this is the first delivery)."""
        reply = self._begin(
            keys=[
                keys.outcome(job.job_id),
                keys.job_state(job.job_id),
                _bulk_key(job.bulk_id),
                keys.SUPERSEDED,
                keys.inflight(job.provider, job.thread_id, job.run_id),
            ],
            args=[
                repr(now_s),
                self._progress_keep_s,
                bulk.STATUS_FIELD,
                bulk.BulkStatus.ABORTED.value,
                job.job_id,
            ],
        )
        if reply[0] == b"aborted":
            return None
        if reply[0] == b"superseded":
            return Superseded(by_job_id=text(reply[1]))
        if reply[0] == b"outcome":
            return Outcome.model_validate_json(reply[1])
        fields = {text(k): text(v) for k, v in zip(reply[1::2], reply[2::2], strict=True)}
        return Progress(
            started_at=float(fields["started_at"]),
            cancel_attempts=int(fields.get("cancel_attempts", 0)),
            polls=int(fields.get("polls", 0)),
            cancel_accepted=fields.get("cancel_accepted") == "1",
        )

    def save_progress(self, job_id: str, progress: Progress) -> None:
        """One HSET; the hash's expiry was set by `begin`."""
        mapping: dict[FieldT, EncodableT] = {
            k: int(v) if isinstance(v, bool) else v for k, v in asdict(progress).items()
        }
        self._redis.hset(keys.job_state(job_id), mapping=mapping)


def wait_for_outcome(client: redis.Redis, job_id: str, *, timeout_s: float) -> Outcome | None:
    """Block until `job_id` has an outcome, or `timeout_s` passes (then None).

    Subscribes before looking, so an outcome published in between is not missed.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(keys.OUTCOME_CHANNEL)
    try:
        raw = client.get(keys.outcome(job_id))
        if raw is not None:
            return Outcome.model_validate_json(raw)
        deadline = time.monotonic() + timeout_s
        while (remaining_s := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=min(remaining_s, 1.0))
            if message is None:
                continue
            outcome = Outcome.model_validate_json(message["data"])
            if outcome.job_id == job_id:
                return outcome
        return None
    finally:
        pubsub.close()


def stream_tail(client: redis.Redis) -> str:
    """The id of the newest outcome in the stream ("0-0" when empty): read after it."""
    return _tail(cast(list[Any], client.xrevrange(keys.OUTCOME_STREAM, count=1)))


async def stream_tail_async(client: redis.asyncio.Redis) -> str:
    """`stream_tail` on an asyncio client (for a server's event loop)."""
    return _tail(cast(list[Any], await client.xrevrange(keys.OUTCOME_STREAM, count=1)))


def _tail(newest: list[Any]) -> str:
    return keys.text(newest[0][0]) if newest else "0-0"


def read_batch(
    client: redis.Redis, after_id: str, *, block_ms: int, count: int = 1000
) -> tuple[str, list[Outcome]]:
    """Outcomes published after `after_id` (waiting up to `block_ms`), and the id to go on from."""
    entries = read_entries(client, after_id, block_ms=block_ms, count=count)
    return (entries[-1][0] if entries else after_id), [outcome for _, outcome in entries]


def read_entries(
    client: redis.Redis, after_id: str, *, block_ms: int | None, count: int = 1000
) -> list[tuple[str, Outcome]]:
    """(stream id, outcome) for each outcome published after `after_id`, waiting up to
    `block_ms` for the first (None: do not wait)."""
    reply = client.xread({keys.OUTCOME_STREAM: after_id}, count=count, block=block_ms)
    return _entries(cast(list[Any], reply))


async def read_entries_async(
    client: redis.asyncio.Redis, after_id: str, *, block_ms: int | None, count: int = 1000
) -> list[tuple[str, Outcome]]:
    """`read_entries` on an asyncio client: a server's event loop waits without a thread."""
    reply = await client.xread({keys.OUTCOME_STREAM: after_id}, count=count, block=block_ms)
    return _entries(cast(list[Any], reply))


def _entries(reply: list[Any] | None) -> list[tuple[str, Outcome]]:
    return [
        (keys.text(entry_id), Outcome.model_validate_json(fields[b"outcome"]))
        for _stream, entries in reply or []
        for entry_id, fields in entries
    ]


def follow_outcomes(client: redis.Redis, *, from_start: bool = False) -> Iterator[Outcome]:
    """Yield outcomes as they are published (from the stream's start with `from_start`)."""
    # "$" would be re-read on every call and miss entries between calls: pin an id instead.
    last_id = "0-0" if from_start else stream_tail(client)
    while True:
        last_id, outcomes = read_batch(client, last_id, block_ms=5000, count=500)
        yield from outcomes

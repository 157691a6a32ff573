"""One job, or one run, looked up: "what happened to job X?" and "to run Y?".

A job is `done` (its outcome), `in_flight` (a worker started it: its progress), `queued`
(admitted, not started yet) or unknown. A run's past outcomes are found by reading the
outcome stream backwards (there is no index by run), at most `scan_limit` entries.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, cast

import redis
from pydantic import BaseModel, ConfigDict

from orchestrator.core.models import Outcome
from orchestrator.store import keys
from orchestrator.store.keys import text

SCAN_CHUNK = 1000


class JobState(StrEnum):
    DONE = "done"  # its outcome is published
    IN_FLIGHT = "in_flight"  # a worker started it; see progress
    QUEUED = "queued"  # admitted to the queue, not started yet


class JobProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    started_at: float
    cancel_attempts: int = 0
    polls: int = 0
    cancel_accepted: bool = False


class JobView(BaseModel):
    """Where a job is: its outcome once done, else its progress, else when it was queued."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    state: JobState
    outcome: Outcome | None = None
    progress: JobProgress | None = None
    accepted_at: float | None = None


class RunView(BaseModel):
    """A run's job in flight (if any) and its past outcomes, newest first."""

    model_config = ConfigDict(frozen=True)

    provider: str
    thread_id: str | None
    run_id: str
    in_flight: JobView | None
    outcomes: list[Outcome]
    scanned: int  # outcome stream entries read
    complete: bool  # False: the stream is longer than the scan limit


def job_view(client: redis.Redis, job_id: str) -> JobView | None:
    """Where `job_id` is, in one round trip; None when Redis knows nothing of it (never
    admitted, or expired with the outcomes)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.outcome(job_id))
    pipe.hgetall(keys.job_state(job_id))
    pipe.zscore(keys.ACCEPTED, job_id)
    raw, progress, accepted = pipe.execute()
    if raw is not None:
        outcome = Outcome.model_validate_json(raw)
        return JobView(job_id=job_id, state=JobState.DONE, outcome=outcome, accepted_at=accepted)
    if progress:
        fields = {text(k): text(v) for k, v in progress.items()}
        made = JobProgress(
            started_at=float(fields.get("started_at", 0.0)),
            cancel_attempts=int(fields.get("cancel_attempts", 0)),
            polls=int(fields.get("polls", 0)),
            cancel_accepted=fields.get("cancel_accepted") == "1",
        )
        return JobView(job_id=job_id, state=JobState.IN_FLIGHT, progress=made, accepted_at=accepted)
    if accepted is not None:
        return JobView(job_id=job_id, state=JobState.QUEUED, accepted_at=accepted)
    return None


def run_view(
    client: redis.Redis,
    provider: str,
    thread_id: str | None,
    run_id: str,
    *,
    scan_limit: int = 20_000,
) -> RunView:
    """The run's job in flight, and its outcomes among the newest `scan_limit` published."""
    marker = client.get(keys.inflight(provider, thread_id, run_id))
    in_flight = None if marker is None else job_view(client, text(marker))
    outcomes: list[Outcome] = []
    scanned, upper, complete = 0, "+", False
    while scanned < scan_limit:
        count = min(SCAN_CHUNK, scan_limit - scanned)
        entries = cast(list[Any], client.xrevrange(keys.OUTCOME_STREAM, upper, "-", count=count))
        if not entries:
            complete = True
            break
        scanned += len(entries)
        for _, fields in entries:
            if _same_run(fields, provider, thread_id, run_id):
                outcomes.append(Outcome.model_validate_json(fields[b"outcome"]))
        upper = "(" + text(entries[-1][0])  # exclusive: after the last one read
    return RunView(
        provider=provider, thread_id=thread_id, run_id=run_id, in_flight=in_flight,
        outcomes=outcomes, scanned=scanned, complete=complete,
    )  # fmt: skip


def _same_run(fields: dict[bytes, bytes], provider: str, thread_id: str | None, run: str) -> bool:
    return (
        fields.get(b"run_id") == run.encode()
        and fields.get(b"thread_id", b"") == (thread_id or "").encode()
        and fields.get(b"provider") == provider.encode()
    )

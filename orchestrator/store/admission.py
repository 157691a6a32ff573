"""Admitting cancel jobs: validation, one job per run in flight, and handing them to a queue.

The queue itself is injected (`send`), so this module knows nothing of Celery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from orchestrator.core.errors import InvalidInput, RedisUnavailable
from orchestrator.core.models import CancelJob
from orchestrator.store import keys, scripts
from orchestrator.store.keys import text


@dataclass(frozen=True)
class Submitted:
    job_id: str
    duplicate: bool  # True: a job for this run was already in flight; its id is returned


def build_job(**fields: Any) -> CancelJob:
    """Validate fields into a CancelJob, or raise InvalidInput naming the first bad field."""
    try:
        return CancelJob(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "job"
        # An unknown field's value is not shown: it may be a secret passed by mistake.
        shown = None if first["type"] == "extra_forbidden" else first.get("input")
        raise InvalidInput(field, _rule(first), shown) from None


def submit(
    job: CancelJob,
    *,
    client: redis.Redis,
    send: Callable[[Sequence[CancelJob]], None],
    inflight_ttl_s: int,
    max_deadline_s: float,
) -> Submitted:
    """Queue one job; see `submit_many`."""
    return submit_many(
        [job],
        client=client,
        send=send,
        inflight_ttl_s=inflight_ttl_s,
        max_deadline_s=max_deadline_s,
    )[0]


def submit_many(
    jobs: Sequence[CancelJob],
    *,
    client: redis.Redis,
    send: Callable[[Sequence[CancelJob]], None],
    inflight_ttl_s: int,
    max_deadline_s: float,
    accepted_keep_s: int = 7 * 24 * 3600,
    clock: Callable[[], float] = time.time,
    force: bool = False,
) -> list[Submitted]:
    """Queue `jobs` in one Redis round trip plus one batch send, except those whose run
    already has a job in flight: for those, return the id of the job in flight.

    `force` queues every job, replacing the marker of a job in flight (one lost before it
    could publish, whose marker would otherwise stand for twice the visibility timeout);
    the replaced job, if it ever runs, publishes `skipped` and sends nothing.

    Refuses (InvalidInput) a deadline the broker cannot honour, before anything is queued,
    and raises RedisUnavailable when Redis does not answer. A run's in-flight marker is
    released when its outcome is published (see `outcomes.py`), or after `inflight_ttl_s`
    if the job was lost before it could publish.
    """
    for job in jobs:
        if job.deadline_s > max_deadline_s:
            raise InvalidInput(
                "deadline_s",
                f"must be at most {max_deadline_s:g} s, below RUNCTL_VISIBILITY_TIMEOUT_S",
                job.deadline_s,
            )
    if not jobs:
        return []
    markers = [keys.inflight(job.provider, job.thread_id, job.run_id) for job in jobs]
    bulk_ids = {job.bulk_id for job in jobs}
    if len(bulk_ids) > 1:
        raise ValueError("one batch of jobs belongs to one bulk job, or to none")
    bulk_id = bulk_ids.pop()
    try:
        taken: Any = scripts.register(client, "admit")(
            keys=[keys.ACCEPTED, keys.bulk_jobs(bulk_id or "-"), keys.SUPERSEDED, *markers],
            args=[
                inflight_ttl_s,
                repr(clock()),
                accepted_keep_s,
                1 if bulk_id else 0,
                1 if force else 0,
                *(job.job_id for job in jobs),
            ],
        )
        admitted = [job for job, held in zip(jobs, taken, strict=True) if not held]
        try:
            send(admitted)
        except BaseException:
            if admitted:
                client.delete(*(m for m, held in zip(markers, taken, strict=True) if not held))
            raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(f"{_why_unreachable(exc)}; nothing was queued.") from None
    return [
        Submitted(job_id=text(held), duplicate=True) if held else Submitted(job.job_id, False)
        for job, held in zip(jobs, taken, strict=True)
    ]


def _why_unreachable(exc: redis.RedisError) -> str:
    """What went wrong, in words an operator can act on, without echoing the URL."""
    if isinstance(exc, redis.AuthenticationError):
        return "Redis refused the password in RUNCTL_REDIS_URL"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return (
            "Redis's TLS certificate is not trusted: add ?ssl_ca_certs=/path/to/ca.pem to "
            "RUNCTL_REDIS_URL"
        )
    return (
        f"Redis did not answer ({type(exc).__name__}): check RUNCTL_REDIS_URL and that "
        "Redis is running"
    )


def _rule(error: Any) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")

"""Admitting cancel jobs: validation, one job per run in flight, and handing them to a queue.

The queue itself is injected (`send`), so this module knows nothing of Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from orchestrator import keys
from orchestrator.errors import InvalidInput, RedisUnavailable
from orchestrator.keys import text
from orchestrator.models import CancelJob


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
    send: Callable[[CancelJob], None],
    inflight_ttl_s: int,
    max_deadline_s: float,
) -> Submitted:
    """Queue `job`, unless its run already has a job in flight: then return that job's id.

    Refuses (InvalidInput) a deadline the broker cannot honour, and raises RedisUnavailable
    when Redis does not answer. The in-flight marker is released when the outcome is
    published (see `outcomes.py`), or after `inflight_ttl_s` if the job was lost before it
    could publish.
    """
    if job.deadline_s > max_deadline_s:
        raise InvalidInput(
            "deadline_s",
            f"must be at most {max_deadline_s:g} s, below RUNCTL_VISIBILITY_TIMEOUT_S",
            job.deadline_s,
        )
    try:
        return _submit(job, client=client, send=send, inflight_ttl_s=inflight_ttl_s)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(
            f"Redis did not answer ({type(exc).__name__}); nothing was queued. "
            "Check RUNCTL_REDIS_URL and that Redis is running."
        ) from None


def _submit(
    job: CancelJob,
    *,
    client: redis.Redis,
    send: Callable[[CancelJob], None],
    inflight_ttl_s: int,
) -> Submitted:
    marker = keys.inflight(job.provider.value, job.thread_id, job.run_id)
    if not client.set(marker, job.job_id, nx=True, ex=inflight_ttl_s):
        existing = client.get(marker)
        if existing is not None:
            return Submitted(job_id=text(existing), duplicate=True)
        return _submit(job, client=client, send=send, inflight_ttl_s=inflight_ttl_s)
    try:
        send(job)
    except BaseException:
        client.delete(marker)
        raise
    return Submitted(job_id=job.job_id, duplicate=False)


def _rule(error: Any) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")

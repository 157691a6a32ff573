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
from orchestrator.errors import InvalidInput
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
        raise InvalidInput(field, _rule(first), first.get("input")) from None


def submit(
    job: CancelJob,
    *,
    client: redis.Redis,
    send: Callable[[CancelJob], None],
    inflight_ttl_s: int,
) -> Submitted:
    """Queue `job`, unless its run already has a job in flight: then return that job's id.

    The in-flight marker is released when the outcome is published (see `outcomes.py`),
    or after `inflight_ttl_s` if the job was lost before it could publish.
    """
    marker = keys.inflight(job.provider.value, job.thread_id, job.run_id)
    if not client.set(marker, job.job_id, nx=True, ex=inflight_ttl_s):
        existing = client.get(marker)
        if existing is not None:
            return Submitted(job_id=text(existing), duplicate=True)
        return submit(job, client=client, send=send, inflight_ttl_s=inflight_ttl_s)
    try:
        send(job)
    except BaseException:
        client.delete(marker)
        raise
    return Submitted(job_id=job.job_id, duplicate=False)


def _rule(error: Any) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")

"""Admitting cancel jobs: validation, one job per run in flight, and handing them to a queue.

The queue itself is injected (`send`), so this module knows nothing of Celery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


# KEYS: in-flight markers. ARGV[1]: ttl_s, ARGV[2..]: the job ids, in the same order.
# Returns, per job, '' when its marker was set (the job is admitted), else the id in flight.
_ADMIT = """
local taken = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ARGV[1]) then
    taken[i] = ''
  else
    taken[i] = redis.call('GET', key)
  end
end
return taken
"""


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
) -> list[Submitted]:
    """Queue `jobs` in one Redis round trip plus one batch send, except those whose run
    already has a job in flight: for those, return the id of the job in flight.

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
    markers = [keys.inflight(job.provider.value, job.thread_id, job.run_id) for job in jobs]
    try:
        taken: Any = client.register_script(_ADMIT)(
            keys=markers, args=[inflight_ttl_s, *(job.job_id for job in jobs)]
        )
        admitted = [job for job, held in zip(jobs, taken, strict=True) if not held]
        try:
            send(admitted)
        except BaseException:
            if admitted:
                client.delete(*(m for m, held in zip(markers, taken, strict=True) if not held))
            raise
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(
            f"Redis did not answer ({type(exc).__name__}); nothing was queued. "
            "Check RUNCTL_REDIS_URL and that Redis is running."
        ) from None
    return [
        Submitted(job_id=text(held), duplicate=True) if held else Submitted(job.job_id, False)
        for job, held in zip(jobs, taken, strict=True)
    ]


def _rule(error: Any) -> str:
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")

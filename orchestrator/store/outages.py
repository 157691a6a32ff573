"""What counts as Redis being away for now (worth waiting for), not refusing a command.

The retry mechanics live in `orchestrator.core.retrying`; this module owns only the Redis
knowledge: which of redis-py's errors and replies mean "not now" rather than "never".
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import TypeVar

import redis

from orchestrator.core.retrying import call_through_outages

T = TypeVar("T")

# The connection is gone, Redis is loading its data after a restart (BusyLoadingError is a
# ConnectionError), a replica or a failover (READONLY, MASTERDOWN, TRYAGAIN), memory full
# until outcomes expire (OOM).
REDIS_OUTAGE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
_BUSY_REPLY = re.compile(r"\b(OOM|READONLY|LOADING|MASTERDOWN|TRYAGAIN|BUSY|MISCONF|NOREPLICAS)\b")


def is_redis_outage(exc: BaseException) -> bool:
    """Whether Redis is away for now (worth waiting for), not refusing the command itself."""
    if isinstance(exc, REDIS_OUTAGE_ERRORS):
        return True
    # Replies redis-py has no class for, or wrapped in a script's error ("...: -OOM ...").
    return isinstance(exc, redis.ResponseError) and bool(_BUSY_REPLY.search(str(exc)))


def call_through_redis_outages(
    fn: Callable[[], T],
    *,
    outage_max_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rand: Callable[[], float] = random.random,
) -> T:
    """Call `fn` again after each Redis outage, for up to `outage_max_s`; then raise it.

    `fn` must be safe to run again: a job resumes from its saved progress.
    """
    return call_through_outages(
        fn,
        is_outage=is_redis_outage,
        outage_max_s=outage_max_s,
        clock=clock,
        sleep=sleep,
        rand=rand,
    )

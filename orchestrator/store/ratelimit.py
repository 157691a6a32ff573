"""The global rate limit: one schedule of provider requests shared by every worker.

Each request reserves a slot with GCRA (the generic cell rate algorithm) in a Lua script:
Redis holds, per bucket, the theoretical arrival time of the next request, so workers on
any number of machines draw from one schedule, atomically, with Redis's own clock. A
request is subject to the provider's global bucket and, when it belongs to a bulk job with
its own `--rate`, to that bulk's bucket too: it waits for the later of the two slots.
A 429 that names a delay pauses the whole provider, so that every worker backs off, not
only the one that was told. A 429 that names none cuts the connection's rate by half for
every worker (at most once a second, down to a tenth), and the rate grows back by a
twentieth of the limit each second (AIMD), so that a limit set above the provider's real
one settles below it instead of drawing 429s forever. The same call reports an aborted
bulk job, so that a job stops before sending anything more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis

from orchestrator.core.connections import Connection
from orchestrator.core.lifecycle import Reservation
from orchestrator.core.provider import ProviderError
from orchestrator.core.retrying import RetryPolicy, call_with_retries
from orchestrator.core.settings import Settings
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.store import bulk, keys, scripts

T = TypeVar("T")


BACKOFF_FACTOR = 0.5  # a 429 without a delay halves the rate...
BACKOFF_FLOOR = 0.1  # ...down to a tenth of the limit at most
BACKOFF_HOLD_S = 1.0  # at most one cut a second: the 429s of one overload are one signal
RECOVER_PER_S = 0.05  # the share of the limit regained each second (0.5 -> 1 in 10 s)


class RateLimiter:
    """Reserves request slots for one provider in Redis; one instance per process."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        provider: str,
        rate_limit_rps: float | None,
        burst_s: float,
        telemetry: Telemetry = NO_TELEMETRY,
        recover_per_s: float = RECOVER_PER_S,
    ) -> None:
        self._client = client
        self._provider = provider
        self._telemetry = telemetry
        self._interval_ms = 0.0 if not rate_limit_rps else 1000.0 / rate_limit_rps
        self._burst_ms = burst_s * 1000.0
        self._recover_per_ms = recover_per_s / 1000.0
        self._reserve = scripts.register(client, "reserve")
        self._pause = scripts.register(client, "pause")
        self._backoff = scripts.register(client, "backoff")

    def reserve(self, *, bulk_id: str | None, max_wait_s: float) -> Reservation:
        """Take the next slot, unless it is more than `max_wait_s` away (then take nothing)."""
        reply: Any = self._reserve(
            keys=[
                keys.rate(self._provider),
                keys.bulk_rate(bulk_id or "-"),
                keys.pause(self._provider),
                keys.bulk(bulk_id or "-"),
                keys.rate_backoff(self._provider),
            ],
            args=[
                self._interval_ms,
                bulk_id or "",
                max(0.0, max_wait_s) * 1000.0,
                self._burst_ms,
                bulk.STATUS_FIELD,
                bulk.BulkStatus.ABORTED.value,
                bulk.RATE_FIELD,
                self._recover_per_ms,
            ],
        )
        status, wait_ms = int(reply[0]), int(reply[1])
        if status == 0 and wait_ms > 0:
            self._telemetry.rate_limit_wait(self._provider, wait_ms / 1000.0)
        return Reservation(wait_s=wait_ms / 1000.0, in_time=status == 0, aborted=status == 2)

    def pause(self, delay_s: float) -> None:
        """The provider asked to wait: every worker's next reservation starts after this."""
        self._pause(
            keys=[keys.pause(self._provider), keys.rate(self._provider)],
            args=[max(1, int(delay_s * 1000))],
        )
        self._telemetry.rate_limit_pause(self._provider)

    def back_off(self) -> float:
        """The provider said 429 without a delay: cut the connection's rate for every
        worker (AIMD). Returns the share of the limit now in force (1.0 when unlimited:
        there is no rate to cut)."""
        if not self._interval_ms:
            return 1.0
        share: Any = self._backoff(
            keys=[keys.rate_backoff(self._provider)],
            args=[BACKOFF_FACTOR, BACKOFF_FLOOR, self._recover_per_ms, BACKOFF_HOLD_S * 1000],
        )
        return float(share)

    def aborted(self, bulk_id: str) -> bool:
        """Whether the bulk job was aborted (checked again after a long wait for a slot)."""
        return bulk.bulk_status(self._client, bulk_id) is bulk.BulkStatus.ABORTED


def limited_call(
    limiter: RateLimiter,
    fn: Callable[[], T],
    *,
    budget_s: float,
    policy: RetryPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> T:
    """`fn` (one provider request) in its turn under the global limit, with the one retry
    policy, all within `budget_s`: for lookups outside a cancel job (discovery, enforcer)."""
    deadline_at = clock() + budget_s

    def attempt() -> T:
        turn = limiter.reserve(bulk_id=None, max_wait_s=max(deadline_at - clock(), 1.0))
        if not turn.in_time:
            raise ProviderError("no request slot under the rate limit in time", should_retry=True)
        sleep(turn.wait_s)
        return fn()

    return call_with_retries(
        attempt, policy=policy, deadline_at=deadline_at, clock=clock, sleep=sleep
    )


def rate_limiter(
    client: redis.Redis,
    settings: Settings,
    connection: Connection,
    *,
    telemetry: Telemetry = NO_TELEMETRY,
) -> RateLimiter:
    """The connection's own bucket and 429 pause (keyed by its name), at its own limit or,
    when it names none, RUNCTL_RATE_LIMIT_RPS."""
    rps = connection.rate_limit_rps
    return RateLimiter(
        client,
        provider=connection.name,
        rate_limit_rps=settings.rate_limit_rps if rps is None else rps,
        burst_s=settings.rate_burst_s,
        telemetry=telemetry,
    )

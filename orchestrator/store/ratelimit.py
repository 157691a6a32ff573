"""The global rate limit: one schedule of provider requests shared by every worker.

Each request reserves a slot with GCRA (the generic cell rate algorithm) in a Lua script:
Redis holds, per bucket, the theoretical arrival time of the next request, so workers on
any number of machines draw from one schedule, atomically, with Redis's own clock. A
request is subject to the provider's global bucket and, when it belongs to a bulk job with
its own `--rate`, to that bulk's bucket too: it waits for the later of the two slots.
A 429 that names a delay pauses the whole provider, so that every worker backs off, not
only the one that was told. The same call reports an aborted bulk job, so that a job
stops before sending anything more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis

from orchestrator.core.lifecycle import Reservation
from orchestrator.core.models import Provider
from orchestrator.core.provider import ProviderError
from orchestrator.core.retrying import RetryPolicy, call_with_retries
from orchestrator.core.settings import Settings
from orchestrator.store import keys

T = TypeVar("T")

# KEYS: global tat, bulk tat (or a dummy), pause, bulk record (or a dummy).
# ARGV: global interval ms (0 = unlimited), bulk id ('' = none), max wait ms, burst ms.
# Returns {status, wait_ms}: status 0 reserved, 1 no slot within max wait, 2 aborted.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local max_wait = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local bulk = ARGV[2] ~= ''
local bulk_interval = 0
if bulk then
  local fields = redis.call('HMGET', KEYS[4], 'status', 'rate_limit_rps')
  if fields[1] == 'aborted' then return {2, 0} end
  local rate = tonumber(fields[2] or '0') or 0
  if rate > 0 then bulk_interval = 1000 / rate end
end
local wait = 0
local pause = redis.call('PTTL', KEYS[3])
if pause > 0 then wait = pause end
local function slot(key, interval)
  if interval <= 0 then return nil end
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  local start = tat - burst
  if start < now + wait then start = now + wait end
  return {tat, start - now}
end
local g = slot(KEYS[1], tonumber(ARGV[1]))
local b = bulk and slot(KEYS[2], bulk_interval) or nil
if g and g[2] > wait then wait = g[2] end
if b and b[2] > wait then wait = b[2] end
if wait > max_wait then return {1, math.floor(wait)} end
-- Every bucket is charged at the moment this request really goes (the latest of its
-- slots), so a bucket that holds it back does not leave another's slot unused.
local at = now + wait
local function take(key, s, interval)
  if s then
    local tat = s[1]
    if tat < at then tat = at end
    local next_tat = tat + interval
    redis.call('SET', key, tostring(next_tat), 'PX', math.ceil(next_tat - now + 60000))
  end
end
take(KEYS[1], g, tonumber(ARGV[1]))
take(KEYS[2], b, bulk_interval)
return {0, math.floor(wait)}
"""

# KEYS: pause, global tat. ARGV: delay ms. Extends the pause, never shortens it, and moves
# the schedule past it, so that slots are handed out after the pause, not during it.
_PAUSE = """
local current = redis.call('PTTL', KEYS[1])
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
local t = redis.call('TIME')
local resume = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if tat < resume then
  redis.call('SET', KEYS[2], tostring(resume), 'PX', math.ceil(tonumber(ARGV[1]) + 60000))
end
return 0
"""


class RateLimiter:
    """Reserves request slots for one provider in Redis; one instance per process."""

    def __init__(
        self, client: redis.Redis, *, provider: str, rate_limit_rps: float | None, burst_s: float
    ) -> None:
        self._client = client
        self._provider = provider
        self._interval_ms = 0.0 if not rate_limit_rps else 1000.0 / rate_limit_rps
        self._burst_ms = burst_s * 1000.0
        self._reserve = client.register_script(_RESERVE)
        self._pause = client.register_script(_PAUSE)

    def reserve(self, *, bulk_id: str | None, max_wait_s: float) -> Reservation:
        """Take the next slot, unless it is more than `max_wait_s` away (then take nothing)."""
        reply: Any = self._reserve(
            keys=[
                keys.rate(self._provider),
                keys.bulk_rate(bulk_id or "-"),
                keys.pause(self._provider),
                keys.bulk(bulk_id or "-"),
            ],
            args=[self._interval_ms, bulk_id or "", max(0.0, max_wait_s) * 1000.0, self._burst_ms],
        )
        status, wait_ms = int(reply[0]), int(reply[1])
        return Reservation(wait_s=wait_ms / 1000.0, in_time=status == 0, aborted=status == 2)

    def pause(self, delay_s: float) -> None:
        """The provider asked to wait: every worker's next reservation starts after this."""
        self._pause(
            keys=[keys.pause(self._provider), keys.rate(self._provider)],
            args=[max(1, int(delay_s * 1000))],
        )

    def aborted(self, bulk_id: str) -> bool:
        """Whether the bulk job was aborted (checked again after a long wait for a slot)."""
        return bool(self._client.hget(keys.bulk(bulk_id), "status") == b"aborted")


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


def rate_limiter(client: redis.Redis, settings: Settings, provider: Provider) -> RateLimiter:
    return RateLimiter(
        client,
        provider=provider.value,
        rate_limit_rps=settings.rate_limit_rps,
        burst_s=settings.rate_burst_s,
    )

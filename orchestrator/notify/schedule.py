"""The delivery schedule: when a failed delivery is tried again, and when it is given up.

This is the notifier's retry policy, as data, in one place (the provider's is
`core.retrying`: a different promise, so a different policy). A delivery is attempted at
once, then after each wait of `delays_s` in turn, each wait counted from the failed attempt:

    attempt  1    2     3      4       5     6     7
    after    0    5 s   5 min  30 min  2 h   5 h   10 h   (about 17.6 h in all)

the Standard Webhooks recommendation, cut at 24 h. A receiver that answers 429 or 503 with
`Retry-After` is waited at least that long (never less than the schedule's wait); a next
attempt that would start more than `give_up_after_s` after the first is not made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class DeliverySchedule:
    delays_s: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    give_up_after_s: float = 24 * 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.delays_s) + 1


DEFAULT_SCHEDULE = DeliverySchedule()


def next_attempt_at(
    schedule: DeliverySchedule,
    *,
    attempts: int,
    first_at: float,
    now_s: float,
    retry_after_s: float | None = None,
) -> float | None:
    """When to try again after `attempts` failed attempts (epoch s), or None to give up.

    Pure: `first_at` is when the first attempt was made, `now_s` when the last one failed.
    """
    if attempts < 1 or attempts > len(schedule.delays_s):
        return None
    wait_s = schedule.delays_s[attempts - 1]
    if retry_after_s is not None:
        wait_s = max(wait_s, retry_after_s)
    due = now_s + wait_s
    return None if due - first_at > schedule.give_up_after_s else due


def parse_retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """A `Retry-After` header as seconds from now: delta-seconds or an HTTP date (RFC 9110).
    None when absent or unreadable (then the schedule alone decides)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

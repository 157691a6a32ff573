"""The delivery schedule as a pure function: waits, Retry-After, the 24 h limit."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.notify.schedule import (
    DEFAULT_SCHEDULE,
    DeliverySchedule,
    next_attempt_at,
    parse_retry_after_s,
)


def waits(schedule: DeliverySchedule, retry_after_s: float | None = None) -> list[float]:
    """The waits a delivery that always fails would see, attempt after attempt."""
    now, seen = 1000.0, list[float]()
    for attempts in range(1, 100):
        due = next_attempt_at(schedule, attempts=attempts, first_at=1000.0, now_s=now,
                              retry_after_s=retry_after_s)  # fmt: skip
        if due is None:
            return seen
        seen.append(due - now)
        now = due
    raise AssertionError("the schedule never gives up")


def test_the_documented_schedule_spans_under_a_day() -> None:
    assert waits(DEFAULT_SCHEDULE) == [5, 300, 1800, 7200, 18000, 36000]
    assert DEFAULT_SCHEDULE.max_attempts == 7
    assert sum(waits(DEFAULT_SCHEDULE)) < 24 * 3600


def test_retry_after_is_waited_in_full_never_less_than_the_schedule() -> None:
    schedule = DeliverySchedule(delays_s=(1.0, 2.0, 4.0), give_up_after_s=3600)
    assert waits(schedule, retry_after_s=3.0) == [3.0, 3.0, 4.0]
    assert waits(schedule, retry_after_s=0.5) == [1.0, 2.0, 4.0]


def test_nothing_is_attempted_past_the_give_up_age() -> None:
    schedule = DeliverySchedule(delays_s=(10.0, 10.0, 10.0), give_up_after_s=25.0)
    assert waits(schedule) == [10.0, 10.0]
    assert next_attempt_at(schedule, attempts=1, first_at=0, now_s=0, retry_after_s=30) is None


def test_attempt_counts_outside_the_schedule_give_up() -> None:
    assert next_attempt_at(DEFAULT_SCHEDULE, attempts=0, first_at=0, now_s=0) is None
    assert next_attempt_at(DEFAULT_SCHEDULE, attempts=7, first_at=0, now_s=0) is None


def test_retry_after_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after_s("120") == 120.0
    assert parse_retry_after_s("Tue, 01 Dec 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after_s("Tue, 01 Dec 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after_s("soon") is None
    assert parse_retry_after_s(None) is None

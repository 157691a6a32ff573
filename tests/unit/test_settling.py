"""The learned poll schedule: pure functions of a histogram, a hint and the time.

Given settle times observed on a connection, when the schedule places the next look, then
it goes where the given share of unsettled runs has settled, never under the hint, with
the exact sleeps asserted.
"""

from __future__ import annotations

import pytest

from orchestrator.core.lifecycle import Lifecycle, PollPolicy, Progress
from orchestrator.core.models import CancelJob, Result
from orchestrator.core.provider import ProviderReply
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settling import (
    LearnedSchedule,
    LookPlan,
    SettleHistogram,
    bin_of,
    decay_weight,
    merge,
    next_look_s,
    spread,
)
from tests.unit.fakes import START_S, FakeClock, ScriptedProvider, reply

PLAN = LookPlan(first_quantile=0.75, next_quantile=0.9, min_gap_s=0.25)


def uniform(low_s: float, high_s: float) -> SettleHistogram:
    """One unit per bin over (low_s, high_s]."""
    empty = SettleHistogram.empty()
    return SettleHistogram(
        merge(empty.weights, {i: 1.0 for i in range(bin_of(low_s) + 1, bin_of(high_s) + 1)})
    )


def test_bins_cover_half_open_intervals() -> None:
    assert [bin_of(s) for s in (0.0, 0.05, 0.0501, 0.1, 1.2)] == [0, 0, 1, 1, 23]
    assert bin_of(1_000.0) == 399  # the last bin holds everything later


def test_an_observation_spreads_one_unit_over_its_interval() -> None:
    weights = spread(0.5, 0.75)
    assert sorted(weights) == [10, 11, 12, 13, 14]
    assert [round(w, 9) for w in weights.values()] == [0.2] * 5
    assert spread(0.52, 0.53) == {10: 1.0}
    assert spread(0.6, 0.6) == {11: 1.0}
    assert sum(spread(0.01, 0.33).values()) == pytest.approx(1.0)


def test_decay_halves_per_half_life() -> None:
    assert decay_weight(600.0, 0.0, half_life_s=300.0) == 4.0
    assert decay_weight(0.0, 300.0, half_life_s=300.0) == 0.5


def test_quantiles_of_a_uniform_histogram() -> None:
    histogram = uniform(0.3, 1.5)  # 24 bins
    assert histogram.quantile_after(0.75, 0.0) == pytest.approx(1.2)
    assert histogram.quantile_after(0.5, 0.0) == pytest.approx(0.9)
    # Of the runs unsettled at 1.2 s, 90 % settle by 1.5 s (6 bins: the 6th).
    assert histogram.quantile_after(0.9, 1.2) == pytest.approx(1.5)
    assert histogram.quantile_after(0.5, 1.5) is None  # nothing known beyond


def test_the_first_look_goes_at_the_likely_settle_time() -> None:
    sleep_s = next_look_s(
        uniform(0.3, 1.5), since_cancel_s=0.0, looks_done=0, hint_s=None, plan=PLAN
    )
    assert sleep_s == pytest.approx(1.2)


def test_never_sooner_than_the_servers_hint() -> None:
    sleep_s = next_look_s(
        uniform(0.3, 1.5),
        since_cancel_s=1.45,
        looks_done=1,
        hint_s=0.25,
        plan=PLAN,
        unsettled_s=1.45,
    )
    assert sleep_s == 0.25  # 90 % of the rest settle by 1.5 s, but the hint says 0.25


def test_without_a_hint_the_plans_own_gap_is_the_floor() -> None:
    histogram = SettleHistogram.empty().seeded(0.05)
    assert next_look_s(histogram, since_cancel_s=0.0, looks_done=0, hint_s=None, plan=PLAN) == 0.25


def test_an_unlearned_connection_looks_first_at_the_hint_then_keeps_its_cadence() -> None:
    schedule = LearnedSchedule(SettleHistogram.empty, lambda a, b: None, seed_s=1.0, plan=PLAN)
    assert schedule.sleep_s(since_cancel_s=0.0, looks_done=0, hint_s=None) == pytest.approx(1.0)
    assert schedule.sleep_s(since_cancel_s=0.3, looks_done=1, hint_s=0.25, unsettled_s=0.3) is None
    # The hint seen is the new seed: the next run's first look goes there.
    assert schedule.sleep_s(since_cancel_s=0.0, looks_done=0, hint_s=None) == pytest.approx(0.25)


JOB = CancelJob(job_id="job_1", thread_id="thread_1", run_id="run_1", deadline_s=30)


class RecordingHistogram:
    """A histogram kept in memory, as `store.settling` keeps it in Redis."""

    def __init__(self, histogram: SettleHistogram) -> None:
        self.histogram = histogram
        self.observed: list[tuple[float, float]] = []

    def snapshot(self) -> SettleHistogram:
        return self.histogram

    def record(self, after_s: float, by_s: float) -> None:
        self.observed.append((round(after_s, 6), round(by_s, 6)))


def run_learned(
    provider: ScriptedProvider, histogram: RecordingHistogram, clock: FakeClock | None = None
) -> tuple[Result, FakeClock]:
    clock = clock or FakeClock()
    lifecycle = Lifecycle(
        provider=provider,
        retry_policy=RetryPolicy(max_attempts=4, backoff_initial_s=0.5, backoff_max_s=4.0),
        poll_policy=PollPolicy(first_s=1.0, max_s=1.0),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.0,
        schedule=LearnedSchedule(histogram.snapshot, histogram.record, seed_s=0.25, plan=PLAN),
    )
    outcome = lifecycle.run(JOB, Progress(started_at=START_S))
    return outcome.result, clock


def test_the_lifecycle_looks_where_the_learned_schedule_says_and_reports_the_settle() -> None:
    histogram = RecordingHistogram(uniform(0.3, 1.5))
    provider = ScriptedProvider(
        cancels=[reply("cancelling")],
        retrieves=[reply("cancelling", poll_after_s=0.25), reply("cancelled")],
    )
    result, clock = run_learned(provider, histogram)
    assert result is Result.CANCELLED
    # First look at 1.2 s (75 % settled), then 90 % of the rest by 1.5 s: 0.3 s later.
    assert [round(s, 6) for s in clock.sleeps] == [1.2, 0.3]
    assert histogram.observed == [(1.2, 1.5)]


def test_beyond_what_was_learned_the_hint_sets_the_pace_and_the_deadline_the_last_look() -> None:
    histogram = RecordingHistogram(uniform(0.3, 0.5))
    provider = ScriptedProvider(
        cancels=[reply("cancelling")], retrieves=[reply("cancelling", poll_after_s=0.25)]
    )
    result, clock = run_learned(provider, histogram)
    assert result is Result.TIMED_OUT
    assert [round(s, 6) for s in clock.sleeps[:3]] == [0.45, 0.25, 0.25]
    assert sum(clock.sleeps) == pytest.approx(30.0)
    assert histogram.observed == []  # a run that never settled teaches nothing


def test_looks_count_from_when_they_were_sent_not_when_their_answer_was_read() -> None:
    histogram = RecordingHistogram(uniform(0.3, 1.5))
    clock = FakeClock()

    def slow(status: str) -> ProviderReply:
        clock.now_s += 0.4  # the answer waits in a busy event loop
        return reply(status, poll_after_s=0.25)

    provider = ScriptedProvider(
        cancels=[lambda: slow("cancelling")],
        retrieves=[lambda: slow("cancelling"), lambda: slow("cancelled")],
    )
    result, clock = run_learned(provider, histogram, clock)
    assert result is Result.CANCELLED
    # The cancel was sent at 0; its answer read at 0.4, so the first look sleeps 0.8 to
    # go at 1.2; it was sent at 1.2 (answer at 1.6), the next one at 1.85 (0.25 later).
    assert [round(s, 6) for s in clock.sleeps] == [0.8, 0.25]
    assert histogram.observed == [(1.2, 1.85)]

"""The cancel state machine against a scripted provider, with a clock that never waits.

Given a provider's answers, when the lifecycle runs, then it reaches the right result with
the right number of calls and the exact sleeps in between.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.core.lifecycle import Lifecycle, PollPolicy, Progress, Reservation
from orchestrator.core.models import CancelJob, Outcome, Result
from orchestrator.core.retrying import RetryPolicy
from orchestrator.providers.base import ProviderError, ProviderUnreachable
from tests.unit.fakes import START_S, FakeClock, ScriptedProvider, cannot_cancel, reply

JOB = CancelJob(job_id="job_1", thread_id="thread_1", run_id="run_1", deadline_s=30)


def run(
    provider: ScriptedProvider, *, progress: Progress | None = None, job: CancelJob = JOB
) -> tuple[Outcome, FakeClock, list[Progress]]:
    clock = FakeClock()
    saved: list[Progress] = []
    lifecycle = Lifecycle(
        provider=provider,
        retry_policy=RetryPolicy(max_attempts=4, backoff_initial_s=0.5, backoff_max_s=4.0),
        poll_policy=PollPolicy(first_s=0.25, max_s=2.0),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.0,
    )
    outcome = lifecycle.run(job, progress or Progress(started_at=START_S), saved.append)
    return outcome, clock, saved


def test_cancel_then_poll_until_cancelled() -> None:
    provider = ScriptedProvider(
        cancels=[reply("cancelling")],
        retrieves=[reply("cancelling"), reply("cancelling"), reply("cancelled")],
    )
    outcome, clock, saved = run(provider)
    assert outcome.result is Result.CANCELLED
    assert outcome.final_status == "cancelled"
    assert (outcome.cancel_attempts, outcome.polls) == (1, 3)
    assert clock.sleeps == [0.25, 0.5, 1.0]
    assert outcome.error is None
    assert saved[-1].cancel_accepted


def test_the_servers_poll_hint_sets_the_interval() -> None:
    provider = ScriptedProvider(
        cancels=[reply("cancelling", poll_after_s=0.1)],
        retrieves=[reply("cancelling", poll_after_s=0.7), reply("cancelled")],
    )
    _, clock, _ = run(provider)
    assert clock.sleeps == [0.1, 0.7]


def test_requires_action_keeps_polling() -> None:
    provider = ScriptedProvider(
        cancels=[reply("cancelling")],
        retrieves=[reply("requires_action"), reply("cancelling"), reply("cancelled")],
    )
    outcome, _, _ = run(provider)
    assert outcome.result is Result.CANCELLED
    assert outcome.polls == 3


def test_a_cancel_that_raced_completion_reports_completed() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("completed")])
    outcome, _, _ = run(provider)
    assert outcome.result is Result.ALREADY_TERMINAL
    assert outcome.final_status == "completed"


def test_cannot_cancel_a_finished_run_is_already_terminal_without_polling() -> None:
    provider = ScriptedProvider(cancels=[cannot_cancel("failed")])
    outcome, clock, _ = run(provider)
    assert outcome.result is Result.ALREADY_TERMINAL
    assert outcome.final_status == "failed"
    assert provider.calls == ["cancel"]
    assert clock.sleeps == []


def test_cannot_cancel_a_cancelled_run_is_cancelled() -> None:
    outcome, _, _ = run(ScriptedProvider(cancels=[cannot_cancel("cancelled")]))
    assert outcome.result is Result.CANCELLED


def test_cannot_cancel_a_cancelling_run_means_an_earlier_cancel_landed() -> None:
    provider = ScriptedProvider(
        cancels=[ProviderError("Gateway Timeout", http_status=504), cannot_cancel("cancelling")],
        retrieves=[reply("cancelled")],
    )
    outcome, clock, _ = run(provider)
    assert outcome.result is Result.CANCELLED
    assert provider.calls == ["cancel", "cancel", "retrieve"]
    assert clock.sleeps == [0.5, 0.25]


def test_not_found_on_cancel() -> None:
    error = ProviderError("No run found with id 'run_1'.", http_status=404)
    outcome, _, _ = run(ScriptedProvider(cancels=[error]))
    assert outcome.result is Result.NOT_FOUND
    assert outcome.error is not None
    assert outcome.error.http_status == 404


def test_permanent_refusals_are_rejected() -> None:
    for error in (
        ProviderError("Incorrect API key provided.", http_status=401, code="invalid_api_key"),
        ProviderError("forbidden", http_status=403),
        ProviderError("quota", http_status=429, code="insufficient_quota", quota_exhausted=True),
    ):
        outcome, _, _ = run(ScriptedProvider(cancels=[error]))
        assert outcome.result is Result.REJECTED, error
        assert outcome.cancel_attempts == 1


def test_transient_errors_outlasting_the_retries_are_error_after_one_look() -> None:
    provider = ScriptedProvider(
        cancels=[ProviderUnreachable("ConnectError") for _ in range(4)],
        retrieves=[reply("in_progress")],
    )
    outcome, clock, _ = run(provider)
    assert outcome.result is Result.ERROR
    assert outcome.final_status == "in_progress"
    assert outcome.cancel_attempts == 4
    assert provider.calls == ["cancel"] * 4 + ["retrieve"]
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_cancel_whose_answers_were_all_lost_is_followed_when_the_look_shows_it_landed() -> None:
    provider = ScriptedProvider(
        cancels=[ProviderError("Gateway Timeout", http_status=504) for _ in range(4)],
        retrieves=[reply("cancelling"), reply("cancelled")],
    )
    outcome, _, saved = run(provider)
    assert outcome.result is Result.CANCELLED
    assert saved[-1].cancel_accepted


def test_when_the_look_fails_too_the_cancels_error_stands() -> None:
    provider = ScriptedProvider(
        cancels=[ProviderError("Bad Gateway", http_status=502) for _ in range(4)],
        retrieves=[ProviderUnreachable("ConnectError")],
    )
    outcome, _, _ = run(provider)
    assert outcome.result is Result.ERROR
    assert outcome.error is not None
    assert outcome.error.http_status == 502


def test_a_poll_asked_to_wait_keeps_that_pace_after_its_retries_run_out() -> None:
    limited = ProviderError("Rate limit", http_status=429, retry_after_s=3.0)
    provider = ScriptedProvider(
        cancels=[reply("cancelling")],
        retrieves=[limited, limited, limited, limited, reply("cancelled")],
    )
    outcome, clock, _ = run(provider)
    assert outcome.result is Result.CANCELLED
    assert clock.sleeps == [0.25, 3.0, 3.0, 3.0, 3.0]


def test_final_status_is_the_last_status_seen_never_a_guess() -> None:
    provider = ScriptedProvider(
        cancels=[reply("in_progress")],
        retrieves=[ProviderError("unavailable", http_status=503)],
    )
    outcome, _, _ = run(provider, job=JOB.model_copy(update={"deadline_s": 4.0}))
    assert outcome.result is Result.ERROR
    assert outcome.final_status == "in_progress"


def test_stuck_in_cancelling_times_out_at_the_deadline() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelling")])
    outcome, clock, _ = run(provider)
    assert outcome.result is Result.TIMED_OUT
    assert outcome.final_status == "cancelling"
    assert sum(clock.sleeps) == 30.0  # the last poll lands on the deadline itself
    assert max(clock.sleeps) == 2.0


def test_polls_failing_transiently_until_the_deadline_end_in_error() -> None:
    provider = ScriptedProvider(
        cancels=[reply("cancelling")],
        retrieves=[ProviderError("unavailable", http_status=503)],
    )
    job = JOB.model_copy(update={"deadline_s": 5.0})
    outcome, _, _ = run(provider, job=job)
    assert outcome.result is Result.ERROR
    assert outcome.error is not None
    assert outcome.error.http_status == 503


def test_a_resumed_job_skips_the_cancel_it_already_made() -> None:
    provider = ScriptedProvider(retrieves=[reply("cancelled")])
    progress = Progress(started_at=START_S, cancel_attempts=1, polls=2, cancel_accepted=True)
    outcome, _, _ = run(provider, progress=progress)
    assert provider.calls == ["retrieve"]
    assert outcome.result is Result.CANCELLED
    assert (outcome.cancel_attempts, outcome.polls) == (1, 3)


def test_a_resumed_job_keeps_its_original_deadline() -> None:
    provider = ScriptedProvider(retrieves=[reply("cancelling")])
    progress = Progress(started_at=START_S - 29.0, cancel_accepted=True)
    outcome, clock, _ = run(provider, progress=progress)
    assert outcome.result is Result.TIMED_OUT
    assert sum(clock.sleeps) == 1.0


def test_outcome_carries_the_job_and_usage() -> None:
    from orchestrator.core.models import Run, Usage
    from orchestrator.providers.base import ProviderReply

    done = ProviderReply(
        Run(
            id="run_1",
            status="completed",
            usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        )
    )
    outcome, _, _ = run(ScriptedProvider(cancels=[reply("cancelling")], retrieves=[done]))
    assert outcome.usage is not None
    assert outcome.usage.total_tokens == 7
    assert (outcome.job_id, outcome.thread_id, outcome.run_id) == ("job_1", "thread_1", "run_1")
    assert outcome.requested_at == JOB.requested_at


def test_a_job_resumed_after_its_deadline_still_looks_once() -> None:
    provider = ScriptedProvider(retrieves=[reply("cancelled")])
    progress = Progress(started_at=START_S - 100.0, cancel_accepted=True)
    outcome, clock, _ = run(provider, progress=progress)
    assert outcome.result is Result.CANCELLED
    assert provider.calls == ["retrieve"]
    assert clock.sleeps == []


def test_an_internal_error_becomes_an_error_outcome_naming_only_its_type() -> None:
    clock = FakeClock()
    lifecycle = Lifecycle(
        provider=ScriptedProvider(),
        retry_policy=RetryPolicy(),
        poll_policy=PollPolicy(),
        clock=clock,
        sleep=clock.sleep,
    )
    outcome = lifecycle.internal_error(
        JOB, Progress(started_at=START_S), KeyError("sk-would-be-secret")
    )
    assert outcome.result is Result.ERROR
    assert outcome.error is not None
    assert outcome.error.message == "internal error: KeyError"
    assert "secret" not in outcome.model_dump_json()


class FakeGate:
    """Hands out the scripted turns in order (the last one repeats) and records pauses."""

    def __init__(self, *turns: Reservation, aborted_later: bool = False) -> None:
        self.turns = list(turns)
        self.asked: list[float] = []
        self.pauses: list[float] = []
        self.aborted_later = aborted_later
        self.abort_checks = 0
        self.back_offs = 0

    def reserve(self, *, bulk_id: str | None, max_wait_s: float) -> Reservation:
        self.asked.append(max_wait_s)
        return self.turns.pop(0) if len(self.turns) > 1 else self.turns[0]

    def pause(self, delay_s: float) -> None:
        self.pauses.append(delay_s)

    def back_off(self) -> float:
        self.back_offs += 1
        return 0.5

    def aborted(self, bulk_id: str) -> bool:
        self.abort_checks += 1
        return self.aborted_later


def run_gated(
    provider: ScriptedProvider,
    gate: FakeGate,
    job: CancelJob = JOB,
    *,
    oversleep_s: Callable[[], float] = lambda: 0.0,
) -> tuple[Outcome, FakeClock, list[Progress]]:
    """Run `job` under `gate`; each sleep lasts `oversleep_s()` longer than asked (a
    process starved of CPU wakes late)."""
    clock = FakeClock()
    saved: list[Progress] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        clock.now_s += oversleep_s()

    lifecycle = Lifecycle(
        provider=provider,
        retry_policy=RetryPolicy(max_attempts=4, backoff_initial_s=0.5),
        poll_policy=PollPolicy(first_s=0.25, max_s=1.0),
        clock=clock,
        sleep=sleep,
        rand=lambda: 0.0,
        gate=gate,
    )
    return lifecycle.run(job, Progress(started_at=START_S), saved.append), clock, saved


def test_each_request_waits_for_its_turn() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelled")])
    gate = FakeGate(Reservation(wait_s=0.4), Reservation(wait_s=0.1))
    outcome, clock, _ = run_gated(provider, gate)
    assert outcome.result is Result.CANCELLED
    assert clock.sleeps == [0.4, 0.25, 0.1]  # turn, poll interval, turn


def test_a_slot_woken_past_is_not_used_a_new_one_is_taken() -> None:
    # A starved process wakes 0.3 s after its slot: sending then would bunch with the
    # requests of the slots after it. It takes a new slot instead, for each request.
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelled")])
    gate = FakeGate(Reservation(wait_s=0.4), Reservation(wait_s=0.1))
    late = iter([0.3, 0.0, 0.0, 0.3, 0.0])  # late on the first and the fourth sleep
    outcome, clock, _ = run_gated(provider, gate, oversleep_s=lambda: next(late, 0.0))
    assert outcome.result is Result.CANCELLED
    # cancel: slot (late), slot; poll interval; poll: slot (late), slot
    assert clock.sleeps == [0.4, 0.1, 0.25, 0.1, 0.1]
    assert len(gate.asked) == 4


def test_a_slot_woken_just_after_is_used() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelled")])
    gate = FakeGate(Reservation(wait_s=0.4), Reservation(wait_s=0.1))
    outcome, _, _ = run_gated(provider, gate, oversleep_s=lambda: 0.015)  # within 0.02 s
    assert outcome.result is Result.CANCELLED
    assert len(gate.asked) == 2


def test_a_bulk_jobs_request_that_waited_long_checks_for_an_abort() -> None:
    bulk_job = JOB.model_copy(update={"bulk_id": "bulk_1"})
    provider = ScriptedProvider()
    gate = FakeGate(Reservation(wait_s=5.0), aborted_later=True)
    outcome, clock, _ = run_gated(provider, gate, bulk_job)
    assert outcome.result is Result.SKIPPED
    assert clock.sleeps == [5.0]
    assert provider.calls == []  # it waited for its slot, then sent nothing
    assert gate.asked == [2.0]  # a first request reserves at most the cancel backlog ahead


def test_a_short_wait_or_a_job_outside_a_bulk_does_not_check_again() -> None:
    gate = FakeGate(Reservation(wait_s=0.1), aborted_later=True)
    run_gated(ScriptedProvider(cancels=[reply("cancelled")]), gate)
    run_gated(
        ScriptedProvider(cancels=[reply("cancelled")]),
        gate,
        JOB.model_copy(update={"bulk_id": "bulk_1"}),
    )
    assert gate.abort_checks == 0


def test_an_aborted_bulk_job_sends_nothing_and_ends_skipped() -> None:
    provider = ScriptedProvider()
    outcome, _, saved = run_gated(provider, FakeGate(Reservation(wait_s=0, aborted=True)))
    assert outcome.result is Result.SKIPPED
    assert provider.calls == []
    assert outcome.cancel_attempts == 0
    assert saved == []


def test_abort_while_polling_stops_polling_and_keeps_the_last_status() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelling")])
    gate = FakeGate(Reservation(0), Reservation(0), Reservation(0, aborted=True))
    outcome, _, _ = run_gated(provider, gate)
    assert outcome.result is Result.SKIPPED
    assert outcome.final_status == "cancelling"
    assert provider.calls == ["cancel", "retrieve"]


def test_no_slot_before_the_deadline_is_an_error_without_a_request() -> None:
    provider = ScriptedProvider()
    outcome, _, _ = run_gated(provider, FakeGate(Reservation(wait_s=100.0, in_time=False)))
    assert outcome.result is Result.ERROR
    assert outcome.error is not None
    assert outcome.error.type == "rate_limited_here"
    assert provider.calls == []


def test_a_429_with_a_delay_pauses_every_worker() -> None:
    limited = ProviderError("Rate limit", http_status=429, retry_after_s=2.0)
    quota = ProviderError(
        "quota", http_status=429, code="insufficient_quota", retry_after_s=9.0, quota_exhausted=True
    )
    gate = FakeGate(Reservation(0))
    run_gated(ScriptedProvider(cancels=[limited, reply("cancelled")]), gate)
    run_gated(ScriptedProvider(cancels=[quota]), gate)
    assert gate.pauses == [2.0]  # a quota 429 pauses nobody: waiting will not heal it


def test_a_429_without_a_delay_slows_every_worker_down() -> None:
    bare = ProviderError("Rate limit", http_status=429)
    quota = ProviderError("quota", http_status=429, code="insufficient_quota", quota_exhausted=True)
    gate = FakeGate(Reservation(0))
    outcome, _, _ = run_gated(ScriptedProvider(cancels=[bare, reply("cancelled")]), gate)
    run_gated(ScriptedProvider(cancels=[quota]), gate)
    assert outcome.result is Result.CANCELLED
    assert (gate.back_offs, gate.pauses) == (1, [])  # cut once; a quota 429 cuts nothing


def test_waiting_in_line_does_not_spend_the_deadline() -> None:
    provider = ScriptedProvider(cancels=[reply("cancelling")], retrieves=[reply("cancelled")])
    gate = FakeGate(
        Reservation(wait_s=50.0, in_time=False), Reservation(wait_s=0.5), Reservation(0)
    )
    outcome, clock, saved = run_gated(provider, gate)
    assert outcome.result is Result.CANCELLED
    assert clock.sleeps == [0.05, 0.5, 0.25]  # a nap in line, the turn, the first poll
    assert saved[0].started_at == START_S + 0.55  # the deadline starts at the first request
    assert gate.asked == [2.0, 2.0, 29.75]  # the cancel used the turn it waited for

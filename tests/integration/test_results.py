"""Each `result` arises from the simulator's matching scenario, through a real worker.

Given a run in a given state on the simulator, when a cancel job is queued, then the
worker publishes the matching outcome.
"""

from __future__ import annotations

import pytest

from orchestrator.core.models import Result
from tests.integration.harness import Sim, outcome_of
from workers.producer import Producer

pytestmark = pytest.mark.integration


def test_a_stuck_run_is_cancelled(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress")
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id, reason="stuck").job_id)
    assert outcome.result is Result.CANCELLED
    assert outcome.final_status == "cancelled"
    assert outcome.cancel_attempts == 1
    assert outcome.polls >= 1
    assert outcome.reason == "stuck"
    assert outcome.error is None


def test_a_run_waiting_on_tools_is_cancelled(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="requires_action", behavior="requires_action")
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.CANCELLED


@pytest.mark.parametrize("status", ["completed", "failed", "expired", "incomplete"])
def test_a_finished_run_is_already_terminal(sim: Sim, producer: Producer, status: str) -> None:
    thread_id, run_id = sim.seed_one(status=status)
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.ALREADY_TERMINAL
    assert outcome.final_status == status
    assert outcome.polls == 0


def test_a_run_that_races_the_cancel_reports_completed(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress", behavior="race_complete")
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.ALREADY_TERMINAL
    assert outcome.final_status == "completed"
    assert outcome.usage is not None


def test_an_unknown_run_is_not_found(sim: Sim, producer: Producer) -> None:
    thread_id, _ = sim.seed_one(status="in_progress")
    outcome = outcome_of(producer, producer.cancel(thread_id, "run_doesnotexist").job_id)
    assert outcome.result is Result.NOT_FOUND
    assert outcome.error is not None
    assert outcome.error.http_status == 404


def test_an_unknown_thread_is_not_found(producer: Producer) -> None:
    outcome = outcome_of(producer, producer.cancel("thread_nope", "run_nope").job_id)
    assert outcome.result is Result.NOT_FOUND


def test_a_run_stuck_in_cancelling_times_out(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress", behavior="stuck_cancelling")
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id, deadline_s=2).job_id)
    assert outcome.result is Result.TIMED_OUT
    assert outcome.final_status == "cancelling"
    assert outcome.polls >= 2


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 403, "type": "invalid_request_error", "message": "Not allowed"},
        {"status": 401, "code": "invalid_api_key", "message": "Incorrect API key provided."},
        {"status": 429, "code": "insufficient_quota", "type": "insufficient_quota"},
        {"status": 422, "message": "Unprocessable"},
    ],
)
def test_a_permanent_refusal_is_rejected(
    sim: Sim, producer: Producer, fault: dict[str, object]
) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress", fail_cancel=[fault])
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.REJECTED
    assert outcome.cancel_attempts == 1
    assert outcome.error is not None
    assert outcome.error.http_status == fault["status"]


def test_persistent_server_errors_end_in_error(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress", fail_cancel_always={"status": 500})
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id, deadline_s=3).job_id)
    assert outcome.result is Result.ERROR
    assert outcome.error is not None
    assert outcome.error.http_status == 500
    assert outcome.cancel_attempts >= 2


def test_the_delay_the_server_asks_for_is_waited(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(
        status="in_progress",
        fail_cancel=[
            {"status": 429, "code": "rate_limit_exceeded", "retry_after_s": 1.2},
            {"status": 503, "retry_after_s": 0.6},
        ],
    )
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.CANCELLED
    assert outcome.cancel_attempts == 3
    cancels = sim.requests(run_id=run_id, route="cancel_run")
    assert [e["status"] for e in cancels] == [429, 503, 200]
    first_gap_s = cancels[1]["t"] - cancels[0]["t"]
    second_gap_s = cancels[2]["t"] - cancels[1]["t"]
    # Never sooner than asked; the upper bounds only catch a wait that ignored the ask.
    assert 1.2 <= first_gap_s < 5.0
    assert 0.6 <= second_gap_s < 5.0


@pytest.mark.parametrize(
    "lost",
    [{"status": 504, "apply": True}, {"status": 500, "apply": True, "drop": True}],
    ids=["a 504", "a closed connection"],
)
def test_a_lost_cancel_response_still_ends_cancelled(
    sim: Sim, producer: Producer, lost: dict[str, object]
) -> None:
    # The cancel takes effect, its answer is lost; the retry meets "Cannot cancel run with
    # status 'cancelling'", which means it worked.
    thread_id, run_id = sim.seed_one(status="in_progress", fail_cancel=[lost])
    outcome = outcome_of(producer, producer.cancel(thread_id, run_id).job_id)
    assert outcome.result is Result.CANCELLED
    assert outcome.cancel_attempts == 2
    answers = [r["status"] for r in sim.requests(run_id=run_id, route="cancel_run")]
    assert answers == [0 if lost.get("drop") else 504, 400]


def test_a_second_submit_while_in_flight_returns_the_same_job(sim: Sim, producer: Producer) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress", behavior="stuck_cancelling")
    first = producer.cancel(thread_id, run_id, deadline_s=2)
    second = producer.cancel(thread_id, run_id, deadline_s=2)
    assert (second.job_id, second.duplicate) == (first.job_id, True)
    outcome_of(producer, first.job_id)
    cancels = sim.requests(run_id=run_id, route="cancel_run")
    assert len(cancels) == 1
    third = producer.cancel(thread_id, run_id, deadline_s=2)
    assert third.job_id != first.job_id  # finished: a new job may start
    outcome_of(producer, third.job_id)

"""The simulator's run model, driven by a fake clock: no sockets, no sleeps."""

from __future__ import annotations

import random

import pytest

from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.errors import ApiError
from orchestrator.devkit.simulator.ratelimit import TokenBucket, format_duration
from orchestrator.devkit.simulator.state import (
    Fault,
    RequestRecord,
    RunSpec,
    SimRun,
    State,
    Traffic,
)
from orchestrator.devkit.simulator.wire import run_object
from orchestrator.providers.base import RunStatus

WALL_START_S = 1_700_000_000.0
SETTLE_S = 1.0


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now_s: float = 100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_state(clock: FakeClock, **knobs: object) -> State:
    config = SimulatorConfig.model_validate(
        {"cancel_settle_min_s": SETTLE_S, "cancel_settle_max_s": SETTLE_S, "seed": 7, **knobs}
    )
    start_s = clock()
    return State(
        config,
        clock=clock,
        wall_clock=lambda: WALL_START_S + (clock() - start_s),
        rng=random.Random(7),
    )


@pytest.fixture
def state(clock: FakeClock) -> State:
    return make_state(clock)


def seed_one(state: State, **spec: object) -> SimRun:
    return state.seed(RunSpec.model_validate(spec))[0]


def status(state: State, run: SimRun) -> RunStatus:
    return state.retrieve(run.thread_id, run.id).status


def cancel_error(state: State, run: SimRun) -> ApiError:
    with pytest.raises(ApiError) as caught:
        state.cancel(run.thread_id, run.id)
    return caught.value


# -- lifecycle without a cancel ---------------------------------------------------------


def test_created_run_is_queued_then_in_progress_after_queued_s(
    clock: FakeClock, state: State
) -> None:
    view = state.create_thread_and_run(RunSpec(status=RunStatus.QUEUED, queued_s=2.0))
    run = view.run
    assert view.status is RunStatus.QUEUED
    assert view.started_at is None
    clock.advance(1.9)
    assert status(state, run) is RunStatus.QUEUED
    clock.advance(0.1)
    later = state.view(run)
    assert later.status is RunStatus.IN_PROGRESS
    assert later.started_at == int(WALL_START_S + 2.0)


def test_create_answers_queued_even_when_queued_s_is_zero(clock: FakeClock, state: State) -> None:
    view = state.create_thread_and_run(RunSpec(status=RunStatus.QUEUED, queued_s=0.0))
    assert view.status is RunStatus.QUEUED
    assert status(state, view.run) is RunStatus.IN_PROGRESS


def test_run_completes_on_its_own_after_run_duration(clock: FakeClock, state: State) -> None:
    run = seed_one(state, run_duration_s=5.0)
    clock.advance(4.99)
    assert status(state, run) is RunStatus.IN_PROGRESS
    clock.advance(0.01)
    view = state.view(run)
    assert view.status is RunStatus.COMPLETED
    assert view.completed_at == int(WALL_START_S + 5.0)
    assert view.expires_at is None
    assert run_object(view)["usage"]["total_tokens"] > 0


def test_run_without_duration_never_completes(clock: FakeClock, state: State) -> None:
    run = seed_one(state)
    clock.advance(1e6)
    assert status(state, run) is RunStatus.IN_PROGRESS


def test_started_ago_backdates_created_and_started(clock: FakeClock, state: State) -> None:
    run = seed_one(state, started_ago_s=30.0, run_duration_s=20.0)
    view = state.view(run)
    assert view.status is RunStatus.COMPLETED
    assert view.created_at == int(WALL_START_S - 30.0)
    assert view.started_at == view.created_at


@pytest.mark.parametrize(
    "terminal",
    [
        RunStatus.CANCELLED,
        RunStatus.FAILED,
        RunStatus.COMPLETED,
        RunStatus.INCOMPLETE,
        RunStatus.EXPIRED,
    ],
)
def test_seeded_terminal_run_stays_put_and_refuses_cancel(
    clock: FakeClock, state: State, terminal: RunStatus
) -> None:
    run = seed_one(state, status=terminal)
    clock.advance(100.0)
    assert status(state, run) is terminal
    error = cancel_error(state, run)
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.message == f"Cannot cancel run with status '{terminal.value}'."
    assert state.cancels_received == 1
    assert state.cancels_applied == 0


def test_failed_and_incomplete_runs_say_why(state: State) -> None:
    failed = run_object(state.view(seed_one(state, status="failed")))
    incomplete = run_object(state.view(seed_one(state, status="incomplete")))
    assert failed["last_error"]["code"] == "server_error"
    assert failed["failed_at"] is not None
    assert incomplete["incomplete_details"] == {"reason": "max_completion_tokens"}


# -- cancelling -------------------------------------------------------------------------


def test_cancel_goes_cancelling_then_cancelled_at_settle_time(
    clock: FakeClock, state: State
) -> None:
    run = seed_one(state)
    clock.advance(3.0)
    view = state.cancel(run.thread_id, run.id)
    assert view.status is RunStatus.CANCELLING
    assert view.cancelled_at is None
    clock.advance(SETTLE_S - 0.001)
    assert status(state, run) is RunStatus.CANCELLING
    clock.advance(0.001)
    settled = state.view(run)
    assert settled.status is RunStatus.CANCELLED
    assert settled.cancelled_at == int(WALL_START_S + 3.0 + SETTLE_S)
    assert settled.completed_at is None
    assert (state.cancels_received, state.cancels_applied) == (1, 1)


def test_settle_now_ends_what_is_settling_and_leaves_stuck_runs_stuck(
    clock: FakeClock, state: State
) -> None:
    settling, stuck, untouched = seed_one(state), seed_one(state), seed_one(state)
    stuck.behavior = "stuck_cancelling"
    for run in (settling, stuck):
        state.cancel(run.thread_id, run.id)
    clock.advance(SETTLE_S / 4)
    assert state.settle_now() == 1
    assert status(state, settling) is RunStatus.CANCELLED
    assert state.view(settling).cancelled_at == int(WALL_START_S + SETTLE_S / 4)
    assert status(state, stuck) is RunStatus.CANCELLING
    assert status(state, untouched) is not RunStatus.CANCELLING
    assert state.settle_now() == 0


def test_cancel_of_a_cancelling_run_is_refused(state: State) -> None:
    run = seed_one(state)
    state.cancel(run.thread_id, run.id)
    error = cancel_error(state, run)
    assert error.message == "Cannot cancel run with status 'cancelling'."
    assert (state.cancels_received, state.cancels_applied) == (2, 1)


def test_settle_delay_is_drawn_from_the_configured_range(clock: FakeClock) -> None:
    state = make_state(clock, cancel_settle_min_s=0.3, cancel_settle_max_s=1.5)
    runs = state.seed(RunSpec(), count=200)
    for run in runs:
        state.cancel(run.thread_id, run.id)
    settles_s = [run.settle_s for run in runs]
    assert all(0.3 <= settle_s <= 1.5 for settle_s in settles_s)
    assert max(settles_s) - min(settles_s) > 0.5


def test_a_fixed_settle_shape_always_takes_the_minimum(clock: FakeClock) -> None:
    state = make_state(
        clock, cancel_settle_shape="fixed", cancel_settle_min_s=0.5, cancel_settle_max_s=1.5
    )
    runs = state.seed(RunSpec(), count=20)
    for run in runs:
        state.cancel(run.thread_id, run.id)
    assert {run.settle_s for run in runs} == {0.5}


def test_a_lognormal_settle_shape_has_its_median_and_long_tail(clock: FakeClock) -> None:
    state = make_state(
        clock, cancel_settle_shape="lognormal", cancel_settle_median_s=1.0, cancel_settle_p99_s=20.0
    )
    runs = state.seed(RunSpec(), count=4000)
    for run in runs:
        state.cancel(run.thread_id, run.id)
    settles_s = sorted(run.settle_s for run in runs)
    assert 0.85 < settles_s[2000] < 1.15
    assert 14.0 < settles_s[3960] < 28.0


def test_a_lognormal_p99_below_its_median_is_refused() -> None:
    with pytest.raises(ValueError, match="cancel_settle_p99_s"):
        SimulatorConfig(cancel_settle_median_s=2.0, cancel_settle_p99_s=1.0)


def test_settled_runs_say_when_each_settles_in_unix_time(clock: FakeClock, state: State) -> None:
    first, second = seed_one(state), seed_one(state)
    clock.advance(3.0)
    state.cancel(second.thread_id, second.id)
    clock.advance(1.0)
    state.cancel(first.thread_id, first.id)
    rows = state.settled_runs()
    assert [r["run_id"] for r in rows] == [second.id, first.id]
    assert rows[0]["settled_at"] == pytest.approx(WALL_START_S + 3.0 + SETTLE_S)
    assert rows[1]["settled_at"] == pytest.approx(WALL_START_S + 4.0 + SETTLE_S)
    assert [r["run_id"] for r in state.settled_runs(after=1)] == [first.id]


def test_cancel_wins_over_a_natural_end_inside_the_settle_window(
    clock: FakeClock, state: State
) -> None:
    run = seed_one(state, run_duration_s=10.0)
    clock.advance(9.5)
    state.cancel(run.thread_id, run.id)
    clock.advance(SETTLE_S)
    assert status(state, run) is RunStatus.CANCELLED


def test_cancel_of_a_queued_run_never_starts_it(clock: FakeClock, state: State) -> None:
    run = seed_one(state, status="queued")
    state.cancel(run.thread_id, run.id)
    clock.advance(SETTLE_S)
    view = state.view(run)
    assert view.status is RunStatus.CANCELLED
    assert view.started_at is None


def test_stuck_cancelling_run_stays_cancelling(clock: FakeClock, state: State) -> None:
    run = seed_one(state, behavior="stuck_cancelling")
    assert state.cancel(run.thread_id, run.id).status is RunStatus.CANCELLING
    clock.advance(1e5)
    assert status(state, run) is RunStatus.CANCELLING


def test_race_complete_run_ends_completed_with_usage(clock: FakeClock, state: State) -> None:
    run = seed_one(state, behavior="race_complete")
    assert state.cancel(run.thread_id, run.id).status is RunStatus.CANCELLING
    clock.advance(SETTLE_S)
    body = run_object(state.view(run))
    assert body["status"] == "completed"
    assert body["cancelled_at"] is None
    assert body["completed_at"] == int(WALL_START_S + SETTLE_S)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_requires_action_run_waits_until_cancelled(clock: FakeClock, state: State) -> None:
    run = seed_one(state, behavior="requires_action", run_duration_s=1.0)
    clock.advance(100.0)
    body = run_object(state.view(run))
    assert body["status"] == "requires_action"
    assert body["required_action"]["type"] == "submit_tool_outputs"
    assert body["tools"][0]["type"] == "function"
    state.cancel(run.thread_id, run.id)
    clock.advance(SETTLE_S)
    body = run_object(state.view(run))
    assert body["status"] == "cancelled"
    assert body["required_action"] is None


def test_seeding_requires_action_status_means_that_behavior(state: State) -> None:
    run = seed_one(state, status="requires_action")
    assert status(state, run) is RunStatus.REQUIRES_ACTION


def test_seeded_cancelling_run_settles_like_a_cancelled_one(clock: FakeClock, state: State) -> None:
    run = seed_one(state, status="cancelling")
    assert status(state, run) is RunStatus.CANCELLING
    clock.advance(SETTLE_S)
    assert status(state, run) is RunStatus.CANCELLED
    assert state.cancels_applied == 0


# -- scripted faults --------------------------------------------------------------------


def test_cancel_faults_are_used_in_order_once_each(clock: FakeClock, state: State) -> None:
    run = seed_one(
        state,
        fail_cancel=[
            {"status": 503, "retry_after_s": 2.0},
            {"status": 429, "code": "rate_limit_exceeded", "type": "requests"},
            {"status": 500, "message": "boom"},
        ],
    )
    seen = [cancel_error(state, run) for _ in range(3)]
    assert [error.status for error in seen] == [503, 429, 500]
    assert seen[0].type == "server_error"
    assert seen[0].retry_after_s == 2.0
    assert (seen[1].type, seen[1].code) == ("requests", "rate_limit_exceeded")
    assert seen[2].message == "boom"
    assert status(state, run) is RunStatus.IN_PROGRESS
    assert state.cancel(run.thread_id, run.id).status is RunStatus.CANCELLING
    assert (state.cancels_received, state.cancels_applied) == (4, 1)


def test_applied_fault_cancels_although_the_response_is_an_error(
    clock: FakeClock, state: State
) -> None:
    run = seed_one(state, fail_cancel=[{"status": 504, "apply": True}])
    error = cancel_error(state, run)
    assert error.status == 504
    assert status(state, run) is RunStatus.CANCELLING
    # The client retries the cancel whose response it lost, and learns it had landed.
    assert cancel_error(state, run).message == "Cannot cancel run with status 'cancelling'."
    clock.advance(SETTLE_S)
    assert status(state, run) is RunStatus.CANCELLED
    assert state.cancels_applied == 1


def test_fail_cancel_always_answers_every_cancel(state: State) -> None:
    run = seed_one(state, fail_cancel_always={"status": 500})
    for _ in range(5):
        assert cancel_error(state, run).status == 500
    assert status(state, run) is RunStatus.IN_PROGRESS


def test_retrieve_faults_are_used_in_order_once_each(state: State) -> None:
    run = seed_one(state, fail_retrieve=[{"status": 502}, {"status": 404, "message": "gone"}])
    with pytest.raises(ApiError) as first:
        state.retrieve(run.thread_id, run.id)
    with pytest.raises(ApiError) as second:
        state.retrieve(run.thread_id, run.id)
    assert (first.value.status, second.value.status) == (502, 404)
    assert second.value.message == "gone"
    assert state.retrieve(run.thread_id, run.id).status is RunStatus.IN_PROGRESS


def test_fault_status_must_be_an_error() -> None:
    with pytest.raises(ValueError, match="status"):
        Fault.model_validate({"status": 200})


# -- lookups and listing ----------------------------------------------------------------


def test_unknown_thread_and_run_are_404_with_the_api_messages(state: State) -> None:
    run = seed_one(state)
    with pytest.raises(ApiError) as no_thread:
        state.cancel("thread_nope", run.id)
    with pytest.raises(ApiError) as no_run:
        state.retrieve(run.thread_id, "run_nope")
    assert (no_thread.value.status, no_run.value.status) == (404, 404)
    assert no_thread.value.message == "No thread found with id 'thread_nope'."
    assert no_run.value.message == "No run found with id 'run_nope'."


def test_ids_look_like_the_real_ones(state: State) -> None:
    run = seed_one(state)
    assert run.id.startswith("run_")
    assert len(run.id) == len("run_") + 24
    assert run.thread_id.startswith("thread_")
    assert len(run.thread_id) == len("thread_") + 24
    assert run.id[4:].isalnum()


def test_seed_groups_runs_into_threads(state: State) -> None:
    grouped = state.seed(RunSpec(), count=5, runs_per_thread=2)
    assert len({run.thread_id for run in grouped}) == 3
    shared = state.seed(RunSpec(), count=3, thread_id="thread_mine")
    assert {run.thread_id for run in shared} == {"thread_mine"}
    alone = state.seed(RunSpec(), count=3)
    assert len({run.thread_id for run in alone}) == 3


def test_list_pages_in_both_orders_with_cursors(state: State) -> None:
    ids = [run.id for run in state.seed(RunSpec(), count=5, thread_id="thread_t")]
    newest_first = state.list_runs("thread_t", limit=2)
    assert [view.run.id for view in newest_first.views] == [ids[4], ids[3]]
    assert newest_first.has_more
    following = state.list_runs("thread_t", limit=2, after=ids[3])
    assert [view.run.id for view in following.views] == [ids[2], ids[1]]
    oldest_first = state.list_runs("thread_t", limit=10, order="asc")
    assert [view.run.id for view in oldest_first.views] == ids
    assert not oldest_first.has_more
    before = state.list_runs("thread_t", limit=2, order="asc", before=ids[4])
    assert [view.run.id for view in before.views] == [ids[2], ids[3]]
    assert before.has_more


def test_list_of_unknown_thread_is_404(state: State) -> None:
    with pytest.raises(ApiError) as caught:
        state.list_runs("thread_nope")
    assert caught.value.message == "No thread found with id 'thread_nope'."


def test_stats_count_runs_by_status(clock: FakeClock, state: State) -> None:
    state.seed(RunSpec(), count=3)
    state.seed(RunSpec(status=RunStatus.COMPLETED), count=2)
    stats = state.stats()
    assert stats["runs_total"] == 5
    assert stats["runs_by_status"] == {"in_progress": 3, "completed": 2}


# -- traffic and rate limiting ----------------------------------------------------------


def test_traffic_counts_and_finds_the_busiest_second() -> None:
    traffic = Traffic(log_size=3)
    for t_s in (0.0, 0.2, 0.4, 0.9, 1.5, 3.0):
        traffic.record(RequestRecord(t_s, "GET", "retrieve_run", "thread_a", "run_a", 200))
    assert traffic.requests_total == 6
    assert traffic.max_rps_1s == 4
    assert traffic.by_route == {"retrieve_run": 6}
    assert traffic.by_status == {200: 6}
    assert [entry.t for entry in traffic.log] == [0.9, 1.5, 3.0]


def test_token_bucket_refuses_beyond_its_rate_and_says_how_long_to_wait(
    clock: FakeClock,
) -> None:
    bucket = TokenBucket(2.0, clock)
    assert bucket.admit().admitted
    assert bucket.admit().admitted
    refused = bucket.admit()
    assert not refused.admitted
    assert refused.wait_s == pytest.approx(0.5)
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"
    clock.advance(0.5)
    assert bucket.admit().admitted


def test_reset_durations_read_like_openai_headers() -> None:
    assert format_duration(0.012) == "12ms"
    assert format_duration(1.5) == "1.5s"
    assert format_duration(0.0) == "0s"

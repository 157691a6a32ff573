"""The cancel state machine: cancel, then poll until the run is terminal or the deadline.

Everything with a side effect on time is injected (`clock`, `sleep`, `rand`), so unit tests
drive it against a fake provider and assert the exact sleeps, taking no wall-clock time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from orchestrator.core.models import CancelJob, ErrorDetail, Outcome, Result, Run
from orchestrator.core.provider import Dialect, ProviderError, ProviderReply, RunsProvider
from orchestrator.core.retrying import RetryPolicy, call_with_retries, is_retryable

RESERVE_FLOOR_S = 1.0  # the least a request may wait for its rate-limit slot
ABORT_RECHECK_S = 0.5  # a bulk job's request that waited this long checks for an abort
RECHECK_MIN_S = 0.05  # the shortest nap of a job waiting in line before it asks again
SUPERSEDED = "superseded"  # error.type of a `skipped` job another job took over


@dataclass(frozen=True)
class Progress:
    """What a job has done so far, saved so that a redelivered job resumes.

    It is saved before each cancel attempt and when a cancel is accepted: what resuming
    needs. Polls are counted in memory and saved with the next save, so after a crash the
    published `polls` can undercount the polls of the dead delivery.
    """

    started_at: float  # epoch seconds of the first start; the deadline counts from here
    cancel_attempts: int = 0
    polls: int = 0
    cancel_accepted: bool = False


@dataclass(frozen=True)
class PollPolicy:
    """Polling cadence when the server gives no `openai-poll-after-ms` hint."""

    first_s: float = 1.0
    max_s: float = 1.0

    def interval_s(self, polls_done: int, hint_s: float | None) -> float:
        if hint_s is not None and hint_s > 0:
            return hint_s
        return min(self.first_s * 2.0**polls_done, self.max_s)


class PollSchedule(Protocol):
    """Where the next look goes, learned from the connection's settle times
    (`core.settling.LearnedSchedule`). Without one, `PollPolicy` alone sets the pace."""

    def sleep_s(
        self,
        *,
        since_cancel_s: float,
        looks_done: int,
        hint_s: float | None,
        unsettled_s: float = 0.0,
    ) -> float | None:
        """The sleep before the next look (never under the hint), or None: no opinion.
        `unsettled_s`: when the run was last seen unsettled (0: at the cancel)."""
        ...

    def settled(self, *, after_s: float, by_s: float) -> None:
        """A run settled between these two times (seconds after its cancel was accepted)."""
        ...


def result_for_terminal(dialect: Dialect, status: str) -> Result:
    return Result.CANCELLED if status == dialect.cancelled else Result.ALREADY_TERMINAL


@dataclass(frozen=True)
class Reservation:
    """A request's turn: wait `wait_s`, then send. Or no turn in time, or an aborted bulk."""

    wait_s: float
    in_time: bool = True
    aborted: bool = False


class BulkAborted(Exception):
    """The job's bulk job was aborted: send nothing more."""


class _NoTurn(Exception):
    """No rate-limit slot came within the longest a job may wait in line."""


class Gate(Protocol):
    """The shared rate limit, as the lifecycle sees it (`store.ratelimit.RateLimiter`)."""

    def reserve(self, *, bulk_id: str | None, max_wait_s: float) -> Reservation: ...

    def pause(self, delay_s: float) -> None: ...

    def back_off(self) -> float: ...

    def aborted(self, bulk_id: str) -> bool: ...


class _OpenGate:
    """No limit: every request may go at once."""

    def reserve(self, *, bulk_id: str | None, max_wait_s: float) -> Reservation:
        return Reservation(wait_s=0.0)

    def pause(self, delay_s: float) -> None:
        pass

    def back_off(self) -> float:
        return 1.0

    def aborted(self, bulk_id: str) -> bool:
        return False


OPEN_GATE: Gate = _OpenGate()


@dataclass(frozen=True)
class _Seen:
    """What the last answer said: the run's status, and when to look again."""

    status: str | None = None
    hint_s: float | None = None


@dataclass
class _Step:
    """A decision the lifecycle reached, or None to go on."""

    result: Result
    final_status: str | None = None
    error: ErrorDetail | None = None
    run: Run | None = None


@dataclass(frozen=True)
class Lifecycle:
    """Runs one job to its outcome against one provider."""

    provider: RunsProvider
    retry_policy: RetryPolicy
    poll_policy: PollPolicy
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    rand: Callable[[], float] = random.random
    gate: Gate = field(default_factory=lambda: OPEN_GATE)
    cancel_backlog_s: float = 2.0  # a cancel reserves a slot at most this far ahead
    late_slot_s: float = 0.02  # woken later than this after its slot: take a new one
    first_turn_wait_max_s: float = 3000.0  # the longest a job waits in line for its first
    kind: str | None = None  # the connection's kind, reported in each outcome
    schedule: PollSchedule | None = None  # None: today's cadence (`poll_policy`) alone

    def run(
        self,
        job: CancelJob,
        progress: Progress,
        checkpoint: Callable[[Progress], None] = lambda _: None,
    ) -> Outcome:
        """Cancel `job`'s run and follow it to a decision; never raises a ProviderError.

        Resumes from `progress` (a fresh one for a new job), calling `checkpoint` after each
        step. The deadline counts from the job's first request: a job that waits in line
        for the rate limit does not spend its deadline there (see `_first_turn`).
        """
        state = _State(progress, checkpoint)
        try:
            if not progress.cancel_accepted and progress.cancel_attempts == 0:
                self._first_turn(job, state)
            deadline_at = state.progress.started_at + job.deadline_s
            seen = _Seen()
            if not progress.cancel_accepted:
                decided = self._cancel(job, deadline_at, state)
                if isinstance(decided, _Step):
                    return self._outcome(job, decided, state.progress)
                seen = decided
            step = self._poll(job, deadline_at, state, seen)
        except BulkAborted:
            step = _Step(Result.SKIPPED, state.status)
        except _NoTurn as no_turn:
            step = _Step(
                Result.ERROR, error=ErrorDetail(type="rate_limited_here", message=str(no_turn))
            )
        return self._outcome(job, step, state.progress)

    def _first_turn(self, job: CancelJob, state: _State) -> None:
        """Wait in line for the job's first request, then start its deadline.

        A cancel reserves a slot at most `cancel_backlog_s` ahead; further back in line it
        sleeps a random part of the wait and asks again. So cancels never fill the schedule
        far ahead, and the polls of cancels already sent (which reserve freely) are not
        starved behind them: under a tight limit, runs already cancelled are confirmed first.
        """
        give_up_at = self.clock() + self.first_turn_wait_max_s
        while True:
            turn = self.gate.reserve(bulk_id=job.bulk_id, max_wait_s=self.cancel_backlog_s)
            if turn.aborted:
                raise BulkAborted
            if turn.in_time:
                if self._await(job, turn):
                    break
                continue  # woken past its slot: a new one (see `_await`)
            if self.clock() + turn.wait_s > give_up_at:
                raise _NoTurn(
                    f"no request slot under the rate limit within {self.first_turn_wait_max_s:g} s"
                )
            self.sleep(RECHECK_MIN_S + self.rand() * turn.wait_s)
        state.start(self.clock())

    def internal_error(self, job: CancelJob, progress: Progress, exc: Exception) -> Outcome:
        """The outcome of a job that failed on our side: `error`, naming only the error type
        (its text might quote anything)."""
        detail = ErrorDetail(type="internal_error", message=f"internal error: {type(exc).__name__}")
        return self._outcome(job, _Step(Result.ERROR, error=detail), progress)

    def skipped(self, job: CancelJob) -> Outcome:
        """The outcome of a job whose bulk job was aborted before it started."""
        return self._outcome(job, _Step(Result.SKIPPED), Progress(started_at=self.clock()))

    def superseded(self, job: CancelJob, by_job_id: str) -> Outcome:
        """The outcome of a job another job took over before it began (`cancel --force`
        replaced its in-flight marker): `skipped`, with `error.type` "superseded" naming
        the job that took over. Nothing was sent to the provider."""
        detail = ErrorDetail(
            type=SUPERSEDED, message=f"job {by_job_id} took over this run before this job began"
        )
        step = _Step(Result.SKIPPED, error=detail)
        return self._outcome(job, step, Progress(started_at=self.clock()))

    def _cancel(self, job: CancelJob, deadline_at: float, state: _State) -> _Step | _Seen:
        try:
            reply = self._call(
                job,
                lambda: self.provider.cancel(job.thread_id, job.run_id),
                deadline_at,
                on_attempt=state.count_cancel,
                state=state,
            )
        except ProviderError as error:
            dialect = self.provider.dialect
            if error.http_status == 404 and dialect.look_after_missing_cancel:
                return self._look_after_missing(job, deadline_at, state, error)
            status = state.saw(error.refused_status)
            if status is not None and status == dialect.cancelling:
                state.accept_cancel()  # an earlier cancel landed (its answer was lost)
                return _Seen(status)
            if status is not None and dialect.is_terminal(status):
                return _Step(self._result_for(status), status)
            if status is None and is_retryable(error):
                return self._look_once(job, deadline_at, state, error)
            return _failure(error, status)
        state.accept_cancel()
        state.accepted_at = state.sent_at
        if reply.run is None:  # accepted with no body (langgraph's 202): poll to see
            return _Seen(None, reply.poll_after_s)
        state.saw(reply.run.status)
        if self.provider.dialect.is_terminal(reply.run.status):
            return _Step(self._result_for(reply.run.status), reply.run.status, run=reply.run)
        return _Seen(reply.run.status, reply.poll_after_s)

    def _look_after_missing(
        self, job: CancelJob, deadline_at: float, state: _State, error: ProviderError
    ) -> _Step:
        """The cancel answered 404, which this dialect also says of a finished run: one
        look tells a run that ended (its status decides) from one that never existed."""
        try:
            run = self._look(job, deadline_at, state)
        except ProviderError as look_error:
            return _failure(error if look_error.http_status == 404 else look_error, None)
        state.saw(run.status)
        if self.provider.dialect.is_terminal(run.status):
            return _Step(self._result_for(run.status), run.status, run=run)
        return _failure(error, run.status)  # live, yet nothing to cancel: report the 404

    def _look(self, job: CancelJob, deadline_at: float, state: _State) -> Run:
        reply = self._call(
            job,
            lambda: self.provider.retrieve(job.thread_id, job.run_id),
            deadline_at,
            on_attempt=state.count_poll,
            state=state,
        )
        return _run_of(reply)

    def _look_once(
        self, job: CancelJob, deadline_at: float, state: _State, error: ProviderError
    ) -> _Step | _Seen:
        """After the cancel's retries ran out: one look, since a cancel may have landed
        although no answer came back."""
        try:
            run = _run_of(
                self._request(
                    job,
                    lambda: self.provider.retrieve(job.thread_id, job.run_id),
                    deadline_at,
                    state.count_poll,
                    state,
                )
            )
        except ProviderError:
            return _failure(error, None)
        state.saw(run.status)
        if self.provider.dialect.is_terminal(run.status):
            return _Step(self._result_for(run.status), run.status, run=run)
        if run.status == self.provider.dialect.cancelling:
            state.accept_cancel()
            return _Seen(run.status)
        return _failure(error, run.status)

    def _poll(self, job: CancelJob, deadline_at: float, state: _State, seen: _Seen) -> _Step:
        last_error: ProviderError | None = None
        polled = False
        while True:
            remaining_s = deadline_at - self.clock()
            if remaining_s <= 0 and polled:
                break
            # The last poll lands on the deadline itself, so a run that settles late is seen;
            # a job resumed after its deadline still looks once before it decides.
            if remaining_s > 0:
                self.sleep(min(self._interval_s(state, seen), remaining_s))
            polled = True
            try:
                reply = self._call(
                    job,
                    lambda: self.provider.retrieve(job.thread_id, job.run_id),
                    deadline_at,
                    on_attempt=state.count_poll,
                    state=state,
                )
                run = _run_of(reply)
            except ProviderError as error:
                vanished = self.provider.dialect.vanished
                if error.http_status == 404 and vanished and state.progress.cancel_accepted:
                    return _Step(Result.CANCELLED, vanished)  # our rollback deleted it
                if not is_retryable(error):
                    return _failure(error, seen.status)
                # Retries ran out before the deadline: keep looking, at the pace it asked.
                last_error, seen = error, _Seen(seen.status, error.retry_after_s)
                continue
            last_error, seen = None, _Seen(state.saw(run.status), reply.poll_after_s)
            if self.provider.dialect.is_terminal(run.status):
                self._learn(state)
                return _Step(self._result_for(run.status), seen.status, run=run)
            state.pending_at = state.sent_at
            state.looks += 1
        if last_error is not None:
            return _Step(Result.ERROR, seen.status, error=last_error.detail)
        return _Step(Result.TIMED_OUT, seen.status)

    def _interval_s(self, state: _State, seen: _Seen) -> float:
        """The learned schedule's sleep when it has one (it knows when this delivery's
        cancel was accepted), else the policy's."""
        if self.schedule is not None and state.accepted_at is not None:
            unsettled_at = state.pending_at if state.pending_at is not None else state.accepted_at
            learned = self.schedule.sleep_s(
                since_cancel_s=self.clock() - state.accepted_at,
                looks_done=state.looks,
                hint_s=seen.hint_s,
                unsettled_s=unsettled_at - state.accepted_at,
            )
            if learned is not None:
                return learned
        return self.poll_policy.interval_s(state.progress.polls, seen.hint_s)

    def _learn(self, state: _State) -> None:
        """Tell the schedule when the run settled: after the last look that saw it
        unsettled (or the cancel) and by the look that saw it settled.

        Each look counts from the moment its request was sent, not when its answer was
        read: on a busy worker the answer waits in the event loop, and learning that wait
        as settle time would push every next look later."""
        if self.schedule is None or state.accepted_at is None or state.sent_at is None:
            return
        after_at = state.pending_at if state.pending_at is not None else state.accepted_at
        self.schedule.settled(
            after_s=after_at - state.accepted_at, by_s=state.sent_at - state.accepted_at
        )

    def _result_for(self, status: str) -> Result:
        return result_for_terminal(self.provider.dialect, status)

    def _call(
        self,
        job: CancelJob,
        fn: Callable[[], ProviderReply],
        deadline_at: float,
        on_attempt: Callable[[], None],
        state: _State,
    ) -> ProviderReply:
        return call_with_retries(
            lambda: self._request(job, fn, deadline_at, on_attempt, state),
            policy=self.retry_policy,
            deadline_at=deadline_at,
            clock=self.clock,
            sleep=self.sleep,
            rand=self.rand,
        )

    def _request(
        self,
        job: CancelJob,
        fn: Callable[[], ProviderReply],
        deadline_at: float,
        count: Callable[[], None],
        state: _State,
    ) -> ProviderReply:
        """One request, in its turn under the shared rate limit.

        The slot is reserved in one call and waited for; a bulk job's request that waited
        long looks again whether its bulk job was aborted meanwhile, so that nothing more
        is sent for it. Even at the deadline a request may wait `RESERVE_FLOOR_S` for its
        slot (a job resumed late still gets its one look).
        """
        if state.take_prepaid_turn():
            count()
            state.sent_at = self.clock()
            return self._send(fn)
        while True:
            remaining_s = max(deadline_at - self.clock(), RESERVE_FLOOR_S)
            turn = self.gate.reserve(bulk_id=job.bulk_id, max_wait_s=remaining_s)
            if turn.aborted:
                raise BulkAborted
            if not turn.in_time:
                raise ProviderError(
                    f"no request slot under the rate limit before the deadline "
                    f"(next in {turn.wait_s:g} s)",
                    type="rate_limited_here",
                    should_retry=True,
                )
            if self._await(job, turn):
                break  # else woken past its slot: a new one (see `_await`)
        count()  # only requests really sent are counted (and checkpointed)
        state.sent_at = self.clock()
        return self._send(fn)

    def _await(self, job: CancelJob, turn: Reservation) -> bool:
        """Sleep until the reserved slot; True if the request may go now, False if this
        process woke more than `late_slot_s` after its slot (starved of CPU: a GC pause, a
        busy core). A late slot is not used: many greenlets woken late together would
        otherwise send in one burst, above the limit at the wire; each takes a new slot.
        After a long wait, a bulk job's request checks whether its bulk job was aborted
        meanwhile, so that nothing more is sent for it."""
        if turn.wait_s <= 0:
            return True
        due_at = self.clock() + turn.wait_s
        self.sleep(turn.wait_s)
        if job.bulk_id and turn.wait_s >= ABORT_RECHECK_S and self.gate.aborted(job.bulk_id):
            raise BulkAborted
        return self.clock() - due_at <= self.late_slot_s

    def _send(self, fn: Callable[[], ProviderReply]) -> ProviderReply:
        try:
            return fn()
        except ProviderError as error:
            if error.http_status == 429 and is_retryable(error):
                if error.retry_after_s:
                    self.gate.pause(error.retry_after_s)  # every worker waits, not only this
                else:
                    self.gate.back_off()  # every worker slows down (AIMD), not only this
            raise

    def _outcome(self, job: CancelJob, step: _Step, progress: Progress) -> Outcome:
        finished_at = datetime.fromtimestamp(self.clock(), UTC)
        return Outcome(
            job_id=job.job_id,
            provider=job.provider,
            kind=self.kind,
            thread_id=job.thread_id,
            run_id=job.run_id,
            result=step.result,
            final_status=step.final_status,
            cancel_attempts=progress.cancel_attempts,
            polls=progress.polls,
            requested_at=job.requested_at,
            finished_at=finished_at,
            duration_s=round(max(0.0, (finished_at - job.requested_at).total_seconds()), 6),
            error=step.error,
            usage=step.run.usage if step.run is not None else None,
            reason=job.reason,
            bulk_id=job.bulk_id,
        )


class _State:
    """The job's progress, checkpointed on each change, and the last status seen."""

    def __init__(self, progress: Progress, checkpoint: Callable[[Progress], None]) -> None:
        self.progress = progress
        self.status: str | None = None
        # For the learned schedule, in this delivery only (a resumed job keeps its cadence):
        self.sent_at: float | None = None  # when the last request was sent
        self.accepted_at: float | None = None  # when the accepted cancel was sent
        self.pending_at: float | None = None  # the last look that saw the run unsettled
        self.looks = 0  # looks since the cancel was accepted
        self._checkpoint = checkpoint
        self._prepaid = False

    def start(self, now_s: float) -> None:
        """The first request goes now, in the turn already waited for: the deadline starts."""
        self._prepaid = True
        self._save(replace(self.progress, started_at=now_s))

    def take_prepaid_turn(self) -> bool:
        prepaid, self._prepaid = self._prepaid, False
        return prepaid

    def saw(self, status: str | None) -> str | None:
        if status is not None:
            self.status = status
        return status

    def _save(self, progress: Progress) -> None:
        self.progress = progress
        self._checkpoint(progress)

    def count_cancel(self) -> None:
        self._save(replace(self.progress, cancel_attempts=self.progress.cancel_attempts + 1))

    def count_poll(self) -> None:
        # Not checkpointed: a poll changes nothing a resumed job must know.
        self.progress = replace(self.progress, polls=self.progress.polls + 1)

    def accept_cancel(self) -> None:
        self._save(replace(self.progress, cancel_accepted=True))


def _run_of(reply: ProviderReply) -> Run:
    """The run a look returned; a look with no body is a transient fault (a proxy's page)."""
    if reply.run is None:
        raise ProviderError("a look at the run answered with no body", should_retry=True)
    return reply.run


def _failure(error: ProviderError, status: str | None) -> _Step:
    """A provider error that ends the job: not found, a permanent refusal, or exhaustion."""
    if error.http_status == 404:
        return _Step(Result.NOT_FOUND, status, error=error.detail)
    if is_retryable(error):
        return _Step(Result.ERROR, status, error=error.detail)
    return _Step(Result.REJECTED, status, error=error.detail)

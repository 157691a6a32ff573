"""The simulated runs: a pure, synchronous model with the clock and the random source injected.

A run stores only when things happen (created, starts, cancel requested, natural end) and how
it behaves; its status is computed from those instants whenever it is read. Nothing runs in the
background, so a million idle runs cost memory but no CPU.

Lifecycle, `now` being the injected monotonic clock in seconds:

    queued --(queued_s)--> in_progress --(run_duration_s, if any)--> completed
                           requires_action     (instead of in_progress, for that behavior)
    any non-terminal, non-cancelling --cancel--> cancelling --(settle_s)--> cancelled
        `stuck_cancelling`: stays cancelling; `race_complete`: ends completed instead.

Unix timestamps in run objects come from the wall clock: the offset between the two clocks is
taken once, so every run's timestamps are consistent with each other.
"""

from __future__ import annotations

import math
import random
import re
import string
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.devkit.simulator import errors
from orchestrator.devkit.simulator.config import SettleShape, SimulatorConfig
from orchestrator.devkit.simulator.errors import ApiError
from orchestrator.providers.base import TERMINAL, RunStatus

Behavior = Literal["normal", "stuck_cancelling", "race_complete", "requires_action"]
IdStyle = Literal["openai", "uuid", "response"]
"""How new ids look: `thread_…`/`run_…` (Assistants kinds), UUIDs (langgraph), or
`resp_…` runs in hidden threads (Responses)."""
_PREFIXES: dict[str, tuple[str, str]] = {
    "openai": ("thread_", "run_"),
    "uuid": ("uuid", "uuid"),
    "response": ("thread_", "resp_"),
}
Order = Literal["asc", "desc"]

# A run that is already `cancelling` refuses a second cancel, as the real API does.
CANCELLABLE: frozenset[RunStatus] = frozenset(
    {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION}
)

RUN_EXPIRY_S = 600  # the real API expires a run 10 minutes after it was created
ID_LENGTH = 24
ID_ALPHABET = string.ascii_letters + string.digits
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY_CHARS = 64
METADATA_MAX_VALUE_CHARS = 512
REQUEST_LOG_SIZE = 200_000
NEVER = math.inf


class Fault(BaseModel):
    """A scripted error for one request to one run.

    `apply=True` means the request takes effect but its response is this error: a lost
    response, like a 504 from a proxy after the upstream accepted the cancel. `drop=True`
    closes the connection instead of answering (the status is then not sent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int = Field(ge=400, le=599)
    code: str | None = None
    type: str | None = None
    message: str | None = None
    retry_after_s: float | None = Field(default=None, ge=0.0)
    apply: bool = False
    drop: bool = False

    def to_error(self) -> ApiError:
        """The error response this fault stands for, with protocol defaults for what it omits."""
        if self.status == 429:
            base = errors.rate_limited(
                "Rate limit reached for requests.", self.retry_after_s or 1.0
            )
        elif self.status >= 500:
            base = errors.server_error(self.status)
        else:
            base = ApiError(self.status, "The request was refused.")
        return ApiError(
            self.status,
            self.message or base.message,
            type=self.type or base.type,
            code=self.code if self.code is not None else base.code,
            retry_after_s=self.retry_after_s
            if self.retry_after_s is not None
            else base.retry_after_s,
        )


class RunSpec(BaseModel):
    """What a new run is and how it will behave.

    `status` is the status the run has when created; a terminal one gives an already
    finished run. A `queued` run starts after `queued_s`, or never when that is None.
    `run_duration_s` counts from the start; None means the run never completes on its own.
    `started_ago_s` backdates creation (and the start, unless queued).
    """

    model_config = ConfigDict(extra="forbid")

    status: RunStatus = RunStatus.IN_PROGRESS
    behavior: Behavior = "normal"
    started_ago_s: float = Field(default=0.0, ge=0.0)
    queued_s: float | None = Field(default=None, ge=0.0)
    run_duration_s: float | None = Field(default=None, ge=0.0)
    fail_cancel: list[Fault] = Field(default_factory=list)
    fail_cancel_always: Fault | None = None
    fail_retrieve: list[Fault] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    assistant_id: str = Field(default="asst_sim", min_length=1)
    model: str = Field(default="gpt-sim", min_length=1)
    instructions: str = ""
    tools: list[dict[str, Any]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the run object's sampling fields (temperature, tool_choice, ...)."""

    @field_validator("metadata")
    @classmethod
    def _metadata_within_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > METADATA_MAX_PAIRS:
            raise ValueError(f"at most {METADATA_MAX_PAIRS} pairs")
        for key, item in value.items():
            if len(key) > METADATA_MAX_KEY_CHARS:
                raise ValueError(f"keys are at most {METADATA_MAX_KEY_CHARS} characters")
            if len(item) > METADATA_MAX_VALUE_CHARS:
                raise ValueError(f"values are at most {METADATA_MAX_VALUE_CHARS} characters")
        return value


@dataclass(slots=True)
class SimRun:
    """One run's facts. Instants are on the injected monotonic clock, in seconds."""

    id: str
    thread_id: str
    assistant_id: str
    model: str
    instructions: str
    metadata: dict[str, str]
    tools: list[dict[str, Any]] | None
    options: dict[str, Any] | None
    behavior: Behavior
    created_mono: float
    start_mono: float  # NEVER for a run that stays queued
    end_mono: float | None  # natural completion, or when a seeded terminal run ended
    final_status: RunStatus | None  # set only for runs seeded terminal
    cancel_mono: float | None = None
    settle_s: float = 0.0
    fail_cancel: deque[Fault] | None = None
    fail_cancel_always: Fault | None = None
    fail_retrieve: deque[Fault] | None = None


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as read at one instant: its status and its unix-second timestamps."""

    run: SimRun
    status: RunStatus
    created_at: int
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None


@dataclass(frozen=True, slots=True)
class RunPage:
    views: list[RunView]
    has_more: bool


class RequestRecord(NamedTuple):
    """One API request: `t` is its arrival on the injected monotonic clock, in seconds."""

    t: float
    method: str
    route: str
    thread_id: str | None
    run_id: str | None
    status: int


def status_at(run: SimRun, now: float) -> tuple[RunStatus, float | None]:
    """The run's status at `now`, and the instant it became terminal (None if it is not)."""
    if run.final_status is not None:
        return run.final_status, run.end_mono
    if run.cancel_mono is not None:
        settled_mono = run.cancel_mono + run.settle_s
        if now < settled_mono or run.behavior == "stuck_cancelling":
            return RunStatus.CANCELLING, None
        if run.behavior == "race_complete":
            return RunStatus.COMPLETED, settled_mono
        return RunStatus.CANCELLED, settled_mono
    if now < run.start_mono:
        return RunStatus.QUEUED, None
    if run.behavior == "requires_action":
        return RunStatus.REQUIRES_ACTION, None
    if run.end_mono is not None and now >= run.end_mono:
        return RunStatus.COMPLETED, run.end_mono
    return RunStatus.IN_PROGRESS, None


class Traffic:
    """Request counters, a bounded request log, and the busiest one-second window seen."""

    def __init__(self, log_size: int = REQUEST_LOG_SIZE) -> None:
        self.requests_total = 0
        self.by_route: dict[str, int] = {}
        self.by_status: dict[int, int] = {}
        self.max_rps_1s = 0
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self._window: deque[float] = deque()

    def record(self, entry: RequestRecord) -> None:
        """Count one request and log it. O(1) amortized."""
        self.requests_total += 1
        self.by_route[entry.route] = self.by_route.get(entry.route, 0) + 1
        self.by_status[entry.status] = self.by_status.get(entry.status, 0) + 1
        self.log.append(entry)
        window = self._window
        window.append(entry.t)
        # Arrivals are recorded when their response is ready, so `t` is not strictly
        # increasing; the window is approximate by the longest response time.
        cutoff = entry.t - 1.0
        while window and window[0] <= cutoff:
            window.popleft()
        self.max_rps_1s = max(self.max_rps_1s, len(window))


class State:
    """Every simulated thread and run, and what happened to them.

    Methods that answer an API request raise `ApiError` with the protocol's status and
    message when the real API would refuse. All methods are synchronous and O(1) per run
    touched, except `seed`, `list_runs` (per page) and `runs_by_status` (all runs).
    """

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(config.seed)
        self._wall_offset_s = wall_clock() - clock()
        self.runs: dict[str, SimRun] = {}
        self.threads: dict[str, list[str]] = {}
        self.traffic = Traffic()
        self.cancels_received = 0
        self.cancels_applied = 0
        self.settled_order: list[str] = []

    def reset(self) -> None:
        """Forget every run, thread, counter and logged request."""
        self.runs.clear()
        self.threads.clear()
        self.traffic = Traffic()
        self.cancels_received = 0
        self.cancels_applied = 0
        self.settled_order = []

    # -- creating -----------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh id like the real ones: `run_` or `thread_` and 24 letters and digits, or
        a UUID when `prefix` is "uuid"."""
        while True:
            if prefix == "uuid":
                candidate = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            else:
                candidate = prefix + "".join(self.rng.choices(ID_ALPHABET, k=ID_LENGTH))
            if candidate not in self.runs and candidate not in self.threads:
                return candidate

    def create_thread(self, ids: IdStyle = "openai") -> str:
        thread_id = self.new_id(_PREFIXES[ids][0])
        self.threads[thread_id] = []
        return thread_id

    def create_thread_and_run(
        self, spec: RunSpec, *, ids: IdStyle = "openai", thread_id: str | None = None
    ) -> RunView:
        """`POST /threads/runs`: a new thread (or `thread_id`) with one run, seen as
        `queued` as the API answers, even when `queued_s` is 0 and the next read says
        `in_progress`."""
        if thread_id is None:
            thread_id = self.create_thread(ids)
        run = self._add_run(spec, thread_id, self.clock(), run_prefix=_PREFIXES[ids][1])
        view = self.view(run)
        return RunView(
            run=run,
            status=RunStatus.QUEUED,
            created_at=view.created_at,
            started_at=None,
            expires_at=view.expires_at,
            cancelled_at=None,
            failed_at=None,
            completed_at=None,
        )

    def seed(
        self,
        spec: RunSpec,
        *,
        count: int = 1,
        thread_id: str | None = None,
        runs_per_thread: int | None = None,
        ids: IdStyle = "openai",
    ) -> list[SimRun]:
        """Add `count` runs like `spec`: all in `thread_id` (created if new), or
        `runs_per_thread` to a new thread, or else each in a new thread of its own."""
        if thread_id is not None and not ID_PATTERN.fullmatch(thread_id):
            raise errors.invalid_param("thread_id", "Invalid 'thread_id'.")
        now = self.clock()
        created: list[SimRun] = []
        per_thread = runs_per_thread or 1
        current_thread = thread_id
        for index in range(count):
            if thread_id is None and index % per_thread == 0:
                current_thread = self.new_id(_PREFIXES[ids][0])
            assert current_thread is not None
            self.threads.setdefault(current_thread, [])
            created.append(self._add_run(spec, current_thread, now, run_prefix=_PREFIXES[ids][1]))
        return created

    def _add_run(
        self, spec: RunSpec, thread_id: str, now: float, *, run_prefix: str = "run_"
    ) -> SimRun:
        created_mono = now - spec.started_ago_s
        behavior: Behavior = spec.behavior
        start_mono = created_mono
        if spec.status is RunStatus.QUEUED:
            start_mono = NEVER if spec.queued_s is None else created_mono + spec.queued_s
        elif spec.status is RunStatus.REQUIRES_ACTION and behavior == "normal":
            behavior = "requires_action"
        end_mono = None if spec.run_duration_s is None else start_mono + spec.run_duration_s
        final_status = spec.status if spec.status in TERMINAL else None
        if final_status is not None:
            end_mono = now
        run = SimRun(
            id=self.new_id(run_prefix),
            thread_id=thread_id,
            assistant_id=spec.assistant_id,
            model=spec.model,
            instructions=spec.instructions,
            metadata=spec.metadata,
            tools=spec.tools,
            options=spec.options or None,
            behavior=behavior,
            created_mono=created_mono,
            start_mono=start_mono,
            end_mono=end_mono,
            final_status=final_status,
            fail_cancel=deque(spec.fail_cancel) if spec.fail_cancel else None,
            fail_cancel_always=spec.fail_cancel_always,
            fail_retrieve=deque(spec.fail_retrieve) if spec.fail_retrieve else None,
        )
        if spec.status is RunStatus.CANCELLING:
            self._apply_cancel(run, now)
        self.runs[run.id] = run
        self.threads[thread_id].append(run.id)
        return run

    # -- reading ------------------------------------------------------------------------

    def get_run(self, thread_id: str, run_id: str) -> SimRun:
        """The run, or the 404 the real API answers for an unknown thread or run."""
        if thread_id not in self.threads:
            raise errors.thread_not_found(thread_id)
        run = self.runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise errors.run_not_found(run_id)
        return run

    def status_of(self, run: SimRun) -> RunStatus:
        return status_at(run, self.clock())[0]

    def view(self, run: SimRun) -> RunView:
        """The run as it is now."""
        now = self.clock()
        status, ended_mono = status_at(run, now)
        # A run cancelled while queued never started.
        stopped_mono = run.cancel_mono if run.cancel_mono is not None else ended_mono
        started = run.start_mono <= (now if stopped_mono is None else stopped_mono)
        ended_at = None if ended_mono is None else self._unix_s(ended_mono)
        created_at = self._unix_s(run.created_mono)
        return RunView(
            run=run,
            status=status,
            created_at=created_at,
            started_at=self._unix_s(run.start_mono) if started else None,
            expires_at=None if status in TERMINAL else created_at + RUN_EXPIRY_S,
            cancelled_at=ended_at if status is RunStatus.CANCELLED else None,
            failed_at=ended_at if status is RunStatus.FAILED else None,
            completed_at=ended_at if status is RunStatus.COMPLETED else None,
        )

    def retrieve(self, thread_id: str, run_id: str) -> RunView:
        """`GET /threads/{t}/runs/{r}`: the run, unless a scripted fault answers instead."""
        run = self.get_run(thread_id, run_id)
        if run.fail_retrieve:
            raise run.fail_retrieve.popleft().to_error()
        return self.view(run)

    def list_runs(
        self,
        thread_id: str,
        *,
        limit: int = 20,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> RunPage:
        """`GET /threads/{t}/runs`: one page in creation order (`asc`) or its reverse.

        `after` and `before` are run ids in this thread: the page holds the runs that follow
        `after`, or, with `before` alone, the `limit` runs just before it.
        """
        run_ids = self.threads.get(thread_id)
        if run_ids is None:
            raise errors.thread_not_found(thread_id)
        ordered = run_ids if order == "asc" else run_ids[::-1]
        start = 0 if after is None else _cursor_index(ordered, after, "after") + 1
        stop = len(ordered) if before is None else _cursor_index(ordered, before, "before")
        window = ordered[start:stop]
        page = window[-limit:] if before is not None and after is None else window[:limit]
        return RunPage(
            views=[self.view(self.runs[run_id]) for run_id in page],
            has_more=len(window) > limit,
        )

    # -- cancelling ---------------------------------------------------------------------

    def cancel(self, thread_id: str, run_id: str) -> RunView:
        """`POST /threads/{t}/runs/{r}/cancel`.

        Scripted faults come first (`fail_cancel_always`, then `fail_cancel` in order, each
        used once); a fault with `apply` still cancels the run. A run that is terminal or
        already `cancelling` is refused with `Cannot cancel run with status '<status>'.`
        """
        run = self.get_run(thread_id, run_id)
        self.cancels_received += 1
        now = self.clock()
        fault = run.fail_cancel_always
        if fault is None and run.fail_cancel:
            fault = run.fail_cancel.popleft()
        if fault is not None:
            if fault.apply and status_at(run, now)[0] in CANCELLABLE:
                self._apply_cancel(run, now)
                self.cancels_applied += 1
            if fault.drop:
                raise errors.ConnectionDropped()
            raise fault.to_error()
        status = status_at(run, now)[0]
        if status not in CANCELLABLE:
            raise errors.cannot_cancel(status.value)
        self._apply_cancel(run, now)
        self.cancels_applied += 1
        return self.view(run)

    def delete(self, run: SimRun) -> None:
        """Forget a run (langgraph's rollback deletes the run and its checkpoints)."""
        self.runs.pop(run.id, None)
        self.threads[run.thread_id].remove(run.id)

    def _apply_cancel(self, run: SimRun, now: float) -> None:
        run.cancel_mono = now
        run.settle_s = settle_time_s(self.config, self.rng)
        self.settled_order.append(run.id)

    def settle_now(self) -> int:
        """Every run still settling settles now (a stuck one stays stuck); returns how many.
        For a test that needed runs to stay `cancelling` for a while, and no longer does."""
        now = self.clock()
        hurried = 0
        for run_id in self.settled_order:
            run = self.runs.get(run_id)
            if run is None or run.cancel_mono is None or run.behavior == "stuck_cancelling":
                continue
            if run.cancel_mono + run.settle_s > now:
                run.settle_s = now - run.cancel_mono
                hurried += 1
        return hurried

    def settled_runs(self, *, after: int = 0) -> list[dict[str, Any]]:
        """Runs whose cancel was applied, in that order from the `after`-th on, with the
        unix time (float seconds) at which each leaves `cancelling` (a run that stays
        stuck has none), so that a benchmark can measure settle-to-outcome latency."""
        rows: list[dict[str, Any]] = []
        for run_id in self.settled_order[after:]:
            run = self.runs[run_id]
            if run.cancel_mono is None:
                continue
            settled_mono = run.cancel_mono + run.settle_s
            stuck = run.behavior == "stuck_cancelling"
            rows.append({
                "thread_id": run.thread_id,
                "run_id": run.id,
                "settle_s": run.settle_s,
                "settled_at": None if stuck else settled_mono + self._wall_offset_s,
            })  # fmt: skip
        return rows

    # -- reporting ----------------------------------------------------------------------

    def runs_by_status(self) -> dict[str, int]:
        """How many runs are in each status now. O(number of runs)."""
        now = self.clock()
        counts: dict[str, int] = {}
        for run in self.runs.values():
            status = status_at(run, now)[0].value
            counts[status] = counts.get(status, 0) + 1
        return counts

    def stats(self) -> dict[str, Any]:
        """The counters `GET /_sim/stats` reports."""
        traffic = self.traffic
        return {
            "requests_total": traffic.requests_total,
            "by_route": dict(traffic.by_route),
            "by_status": {str(code): n for code, n in sorted(traffic.by_status.items())},
            "cancels_received": self.cancels_received,
            "cancels_applied": self.cancels_applied,
            "max_rps_1s": traffic.max_rps_1s,
            "runs_total": len(self.runs),
            "threads_total": len(self.threads),
            "runs_by_status": self.runs_by_status(),
        }

    def _unix_s(self, mono_s: float) -> int:
        return int(mono_s + self._wall_offset_s)


def settle_time_s(config: SimulatorConfig, rng: random.Random) -> float:
    """One settle time drawn from the configured shape."""
    if config.cancel_settle_shape is SettleShape.FIXED:
        return config.cancel_settle_min_s
    if config.cancel_settle_shape is SettleShape.LOGNORMAL:
        mu = math.log(config.cancel_settle_median_s)
        sigma = (math.log(config.cancel_settle_p99_s) - mu) / Z_99
        return rng.lognormvariate(mu, sigma)
    return rng.uniform(config.cancel_settle_min_s, config.cancel_settle_max_s)


Z_99 = 2.3263478740408408  # the standard normal's 99th percentile


def _cursor_index(run_ids: list[str], cursor: str, param: str) -> int:
    try:
        return run_ids.index(cursor)
    except ValueError:
        raise errors.invalid_param(
            param, f"Invalid '{param}': no run with id '{cursor}' in this thread."
        ) from None


def usage_of(run_id: str) -> tuple[int, int]:
    """Prompt and completion tokens of a finished run: made up, but stable per run."""
    digest = zlib.crc32(run_id.encode())
    return 100 + digest % 900, 10 + (digest >> 10) % 500

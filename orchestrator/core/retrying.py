"""The one retry policy: the only place that decides what is worth another attempt.

For the provider, it mirrors the official SDK's rules, which users already know, with two
changes for an orchestrator: every retry is bounded by the job's deadline, and a delay the
server asked for is honoured in full (never shortened) or, when it would run past the cap or
the deadline, not waited at all.

For an outage of a store (what counts as one is the store's knowledge: see
`orchestrator.store.outages`), a job waits for it to end and runs again from its saved
progress, for up to a bounded time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from orchestrator.core.provider import ProviderError, ProviderUnreachable

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long between them when the server does not say."""

    max_attempts: int = 20
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    server_delay_max_s: float = 300.0
    jitter_fraction: float = 0.25


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt could succeed. Pure: depends on the error alone."""
    if not isinstance(exc, ProviderError):
        return False
    if isinstance(exc, ProviderUnreachable):
        return True
    if exc.quota_exhausted:
        return False
    if exc.should_retry is not None:
        return exc.should_retry
    status = exc.http_status
    return status is not None and (status in RETRYABLE_STATUSES or status >= 500)


def backoff_s(policy: RetryPolicy, attempt: int, rand: Callable[[], float]) -> float:
    """Exponential backoff with jitter for the wait after attempt number `attempt` (1-based)."""
    base: float = min(policy.backoff_initial_s * 2.0 ** (attempt - 1), policy.backoff_max_s)
    return base * (1.0 - policy.jitter_fraction * rand())


def delay_s(
    policy: RetryPolicy, attempt: int, exc: BaseException | None, rand: Callable[[], float]
) -> float:
    """The wait before the next attempt: the server's ask if it made one, else backoff."""
    asked = exc.retry_after_s if isinstance(exc, ProviderError) else None
    if asked is not None and asked > 0:
        return asked
    return backoff_s(policy, attempt, rand)


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop when the next attempt would start after the deadline or past the server cap."""

    def __init__(self, policy: RetryPolicy, deadline_at: float, clock: Callable[[], float]):
        self._policy = policy
        self._deadline_at = deadline_at
        self._clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep
        if upcoming > self._policy.server_delay_max_s:
            return True
        return self._clock() + upcoming >= self._deadline_at


def call_with_retries(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    deadline_at: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rand: Callable[[], float] = random.random,
) -> T:
    """Call `fn` until it succeeds or the policy gives up; then raise its last error.

    `clock` gives epoch seconds and `deadline_at` is on that clock; `sleep` and `rand` are
    injected so that tests can collect the waits without waiting.
    """

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        wait=lambda rs: delay_s(
            policy, rs.attempt_number, rs.outcome.exception() if rs.outcome else None, rand
        ),
        stop=tenacity.stop_after_attempt(policy.max_attempts)
        | _StopAtDeadline(policy, deadline_at, clock),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)


# Waits between runs of a job while its store is away: short at first (a restart takes about a
# second), then every few seconds.
OUTAGE_POLICY = RetryPolicy(max_attempts=1_000_000, backoff_initial_s=0.25, backoff_max_s=5.0)


def call_through_outages(
    fn: Callable[[], T],
    *,
    is_outage: Callable[[BaseException], bool],
    outage_max_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rand: Callable[[], float] = random.random,
) -> T:
    """Call `fn` again after each error `is_outage` accepts, for up to `outage_max_s`; then
    raise it.

    `fn` must be safe to run again: a job resumes from its saved progress.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_outage),
        wait=lambda rs: backoff_s(OUTAGE_POLICY, rs.attempt_number, rand),
        stop=_StopAtDeadline(OUTAGE_POLICY, clock() + outage_max_s, clock),
        before_sleep=lambda rs: log.warning(
            "the store is away (%s); running the job again in %.1f s",
            type(rs.outcome.exception() if rs.outcome else None).__name__,
            rs.upcoming_sleep,
        ),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)

"""Running one job to exactly one published outcome, resuming after a crash."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from orchestrator.core.lifecycle import Lifecycle
from orchestrator.core.models import CancelJob, ErrorDetail, Outcome, Result
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.store.outages import call_through_redis_outages, is_redis_outage
from orchestrator.store.outcomes import OutcomeStore, Superseded

log = logging.getLogger(__name__)


def execute(
    job: CancelJob,
    *,
    lifecycle: Lifecycle,
    store: OutcomeStore,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    redis_outage_max_s: float,
    telemetry: Telemetry = NO_TELEMETRY,
) -> Outcome:
    """Bring `job` to its outcome and publish it once; return the outcome that stands.

    A job that already has an outcome (a redelivery after the worker died between publishing
    and acknowledging) returns it without touching the provider. A job with saved progress
    resumes from it, keeping its original deadline. The outcome this call publishes (not
    one found already published) is told to `telemetry`. When Redis goes away mid-job, the job
    waits for it and runs again from its progress; after `redis_outage_max_s` the Redis
    error is raised, and the caller must hand the job back to the queue.
    """
    return call_through_redis_outages(
        lambda: _execute_once(
            job, lifecycle=lifecycle, store=store, clock=clock, telemetry=telemetry
        ),
        outage_max_s=redis_outage_max_s,
        clock=clock,
        sleep=sleep,
    )


def _execute_once(
    job: CancelJob,
    *,
    lifecycle: Lifecycle,
    store: OutcomeStore,
    clock: Callable[[], float],
    telemetry: Telemetry,
) -> Outcome:
    publish = partial(_publish, store=store, job=job, clock=clock, telemetry=telemetry)
    progress = store.begin(job, clock())
    if isinstance(progress, Outcome):
        log.info("job already has an outcome; not running it again")
        return progress
    if progress is None:
        log.info("its bulk job was aborted; skipping it")
        return publish(lifecycle.skipped(job))
    if isinstance(progress, Superseded):
        log.warning("superseded by job %s; skipping it", progress.by_job_id)
        return publish(lifecycle.superseded(job, progress.by_job_id))
    if progress.cancel_attempts:
        log.info("resuming job", extra={"cancel_accepted": progress.cancel_accepted})
    try:
        outcome = lifecycle.run(job, progress, lambda p: store.save_progress(job.job_id, p))
    except Exception as exc:
        if is_redis_outage(exc):
            raise  # nothing can be published now; the job runs again once Redis is back
        # A bug must not lose the job: it ends, once, as an error an operator can see.
        log.exception("job failed unexpectedly")
        outcome = lifecycle.internal_error(job, progress, exc)
    return publish(outcome)


def _publish(
    outcome: Outcome,
    *,
    store: OutcomeStore,
    job: CancelJob,
    clock: Callable[[], float],
    telemetry: Telemetry,
) -> Outcome:
    if store.publish(outcome, provider=job.provider):
        log.info("outcome published", extra={"result": outcome.result.value})
        telemetry.outcome_published(outcome, published_at_s=clock())
        return outcome
    # Another delivery of the same job published first; its outcome is the one that stands.
    standing = store.published(job.job_id)
    return standing if standing is not None else outcome


def reject(
    job: CancelJob,
    reason: str,
    *,
    store: OutcomeStore,
    clock: Callable[[], float],
    telemetry: Telemetry = NO_TELEMETRY,
) -> Outcome:
    """End a job that cannot run here (its connection is unknown) as `rejected`, once."""
    finished_at = datetime.fromtimestamp(clock(), UTC)
    outcome = Outcome(
        job_id=job.job_id,
        provider=job.provider,
        thread_id=job.thread_id,
        run_id=job.run_id,
        result=Result.REJECTED,
        requested_at=job.requested_at,
        finished_at=finished_at,
        duration_s=round(max(0.0, (finished_at - job.requested_at).total_seconds()), 6),
        error=ErrorDetail(type="unknown_connection", message=reason),
        reason=job.reason,
        bulk_id=job.bulk_id,
    )
    return _publish(outcome, store=store, job=job, clock=clock, telemetry=telemetry)

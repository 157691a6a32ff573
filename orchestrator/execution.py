"""Running one job to exactly one published outcome, resuming after a crash."""

from __future__ import annotations

import logging
from collections.abc import Callable

from orchestrator.lifecycle import Lifecycle, Progress
from orchestrator.models import CancelJob, Outcome
from orchestrator.outcomes import OutcomeStore

log = logging.getLogger(__name__)


def execute(
    job: CancelJob, *, lifecycle: Lifecycle, store: OutcomeStore, clock: Callable[[], float]
) -> Outcome:
    """Bring `job` to its outcome and publish it once; return the outcome that stands.

    A job that already has an outcome (a redelivery after the worker died between publishing
    and acknowledging) returns it without touching the provider. A job with saved progress
    resumes from it, keeping its original deadline.
    """
    done = store.published(job.job_id)
    if done is not None:
        log.info("job already has an outcome; not running it again")
        return done
    progress = store.load_progress(job.job_id)
    if progress is None:
        progress = Progress(started_at=clock())
        store.save_progress(job.job_id, progress)
    else:
        log.info("resuming job", extra={"cancel_accepted": progress.cancel_accepted})
    outcome = lifecycle.run(job, progress, lambda p: store.save_progress(job.job_id, p))
    if store.publish(outcome, provider=job.provider.value):
        log.info("outcome published", extra={"result": outcome.result.value})
        return outcome
    # Another delivery of the same job published first; its outcome is the one that stands.
    standing = store.published(job.job_id)
    return standing if standing is not None else outcome

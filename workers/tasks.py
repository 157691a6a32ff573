"""Thin Celery tasks: parse the message, run the job, return the outcome as JSON."""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from pydantic import ValidationError

from orchestrator.execution import execute
from orchestrator.logs import job_context
from orchestrator.models import CancelJob
from workers.app import CANCEL_TASK, ENFORCE_TASK, app
from workers.context import get_context

log = logging.getLogger(__name__)


REDIS_RETRY_COUNTDOWN_S = 5.0


@app.task(bind=True, name=CANCEL_TASK, acks_late=True, reject_on_worker_lost=True)
def cancel_run(self: Task[Any, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Cancel one run and return its published outcome. A malformed job is refused, not retried."""
    try:
        parsed = CancelJob.model_validate(job)
    except ValidationError as exc:
        log.error("refused malformed job: %s", exc.errors(include_url=False, include_input=False))
        raise Reject(reason="malformed job", requeue=False) from None
    context = get_context()
    with job_context(parsed.job_id, parsed.run_id, parsed.thread_id):
        try:
            outcome = execute(
                parsed,
                lifecycle=context.lifecycles[parsed.provider],
                store=context.store,
                clock=time.time,
            )
        except redis.RedisError as exc:
            # Nothing can be published without Redis: run the job again later (it resumes).
            # If Redis is gone, the retry cannot be sent either and the message stays
            # unacknowledged, to be handed out again after the visibility timeout.
            log.error("redis failed mid-job; retrying it: %s", type(exc).__name__)
            raise self.retry(countdown=REDIS_RETRY_COUNTDOWN_S, max_retries=None) from None
    return outcome.to_json_dict()


@app.task(name=ENFORCE_TASK, acks_late=False, ignore_result=True)
def enforce() -> dict[str, Any]:
    """One enforcement pass (beat sends this every RUNCTL_ENFORCE_INTERVAL_S)."""
    from workers.enforcing import make_enforcer
    from workers.producer import Producer

    context = get_context()
    producer = Producer(context.settings)
    try:
        enforcer = make_enforcer(context.settings, context.redis, producer.cancel_many)
        report = enforcer.run_once()
    finally:
        producer.close()
    log.info("enforcement pass", extra={"acted": report.acted, "looked_at": report.looked_at,
                                        "events": len(report.events)})  # fmt: skip
    return {"acted": report.acted, "looked_at": report.looked_at, "events": len(report.events)}

"""Thin Celery tasks: parse the message, run the job, return the outcome as JSON.

The functions are registered on an app by `register` (see `workers.main`), so importing
this module builds nothing from the environment.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NoReturn

import redis
from celery import Celery, Task
from celery.exceptions import Reject
from pydantic import ValidationError

from orchestrator.core.errors import JobInterrupted
from orchestrator.core.logs import job_context
from orchestrator.core.models import CancelJob
from orchestrator.service.execution import execute, reject
from orchestrator.store.outages import is_redis_outage
from workers.app import ENFORCE_TASK
from workers.context import get_context
from workers.envelope import CANCEL_TASK

log = logging.getLogger(__name__)


def _parse(task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> CancelJob:
    job = args[0] if len(args) == 1 and not kwargs else None
    try:
        if not isinstance(job, dict) or "job_id" not in job:
            raise ValueError("the message must carry one job object with a job_id")
        return CancelJob.model_validate(job)
    except (ValidationError, ValueError) as exc:
        reason = _reason(exc)
        log.error("refused a malformed job: %s", reason)
        try:
            get_context().dead_letters.park(
                reason, body=repr((args, kwargs))[:4000], task=CANCEL_TASK,
                message_id=task.request.id,
            )  # fmt: skip
        except redis.RedisError as redis_exc:
            _hand_back(redis_exc)  # parked once Redis is back
        raise Reject(reason="malformed job", requeue=False) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "job"
        return f"{field}: {str(first['msg']).removeprefix('Value error, ')}"
    return str(exc)


def register(app: Celery) -> None:
    """Make `app` run these tasks under their queue names."""
    app.task(bind=True, name=CANCEL_TASK, acks_late=True, reject_on_worker_lost=True)(cancel_run)
    app.task(name=ENFORCE_TASK, acks_late=False, ignore_result=True)(enforce)


def cancel_run(self: Task[Any, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Cancel one run and return its published outcome. A malformed job is parked in the
    dead-letter list and refused, never retried."""
    parsed = _parse(self, args, kwargs)
    context = get_context()
    lifecycle = context.lifecycles.get(parsed.provider)
    if lifecycle is None:
        return _unknown_connection(self, parsed)
    with job_context(parsed.job_id, parsed.run_id, parsed.thread_id):
        try:
            with context.hand_over.job():
                outcome = execute(
                    parsed,
                    lifecycle=lifecycle,
                    store=context.store,
                    clock=time.time,
                    sleep=time.sleep,
                    redis_outage_max_s=context.settings.redis_outage_max_s,
                    telemetry=context.telemetry,
                )
        except JobInterrupted:
            log.info("worker shutting down; handing the job back")
            raise Reject(reason="worker shutting down", requeue=True) from None
        except redis.RedisError as exc:
            if is_redis_outage(exc):
                _hand_back(exc)
            _park_refused(self, parsed, exc)
    return outcome.to_json_dict()


def _unknown_connection(task: Task[Any, Any], job: CancelJob) -> dict[str, Any]:
    """A job for a connection this worker was not configured with: parked where an operator
    looks (to fix runctl.toml and queue it again), and ended `rejected` with the reason, so
    that it has its one outcome and `runctl audit` stays clean. Never retried."""
    context = get_context()
    reason = (
        f"provider: no connection named {job.provider!r} on this worker; "
        f"known: {', '.join(context.lifecycles)}"
    )
    log.error("%s; parking the job", reason)
    try:
        context.dead_letters.park(
            reason, body=job.model_dump_json(), task=CANCEL_TASK, message_id=task.request.id
        )
        outcome = reject(
            job, reason, store=context.store, clock=time.time, telemetry=context.telemetry
        )
    except redis.RedisError as exc:
        _hand_back(exc)
    return outcome.to_json_dict()


def _hand_back(exc: redis.RedisError) -> NoReturn:
    """Return the message to its queue; never `Task.retry`, which drops the message when
    the retry cannot be sent. If Redis is still away the requeue fails too, and the message
    waits in kombu's unacked hash for the restore sweep."""
    log.error("redis away too long; handing the job back: %s", type(exc).__name__)
    raise Reject(reason="redis unreachable", requeue=True) from None


def _park_refused(task: Task[Any, Any], job: CancelJob, exc: redis.RedisError) -> NoReturn:
    """Redis refused one of the job's commands (a bug, not an outage): running it again
    would fail the same way. Park it where an operator looks, then drop the message;
    `runctl audit` lists the job as missing."""
    reason = f"redis refused a command of this job: {type(exc).__name__}: {str(exc)[:200]}"
    log.error("%s; parking the job", reason)
    try:
        get_context().dead_letters.park(
            reason, body=job.model_dump_json(), task=CANCEL_TASK, message_id=task.request.id
        )
    except redis.RedisError as park_exc:
        _hand_back(park_exc)  # not even parked: keep the message
    raise Reject(reason="redis refused the job", requeue=False) from None


def enforce() -> dict[str, Any]:
    """One enforcement pass (beat sends this every RUNCTL_ENFORCE_INTERVAL_S)."""
    report = get_context().enforcing.run_once()
    log.info("enforcement pass", extra={"acted": report.acted, "looked_at": report.looked_at,
                                        "events": len(report.events)})  # fmt: skip
    return {"acted": report.acted, "looked_at": report.looked_at, "events": len(report.events)}

"""The Python API for producers: queue cancel jobs and wait for their outcomes.

producer = Producer(get_settings())
submitted = producer.cancel("thread_abc", "run_abc", reason="stuck")
outcome = producer.wait(submitted.job_id, timeout_s=60)
"""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.jobs import Submitted, build_job, submit
from orchestrator.models import CancelJob, Outcome
from orchestrator.outcomes import wait_for_outcome
from orchestrator.settings import Settings
from workers.app import CANCEL_TASK, make_app
from workers.context import redis_client


class Producer:
    """Validates and queues jobs. Holds no credential: workers read the key themselves."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = make_app(settings)
        # An operator's command should fail fast, not ride out a Redis restart like a worker.
        self._redis = redis_client(settings, max_connections=8, retries=2)

    def cancel(self, thread_id: str, run_id: str, **fields: Any) -> Submitted:
        """Queue a cancel of one run; raises InvalidInput naming the bad field, queues nothing."""
        fields.setdefault("deadline_s", self._settings.default_deadline_s)
        return submit(
            build_job(thread_id=thread_id, run_id=run_id, **fields),
            client=self._redis,
            send=self._send,
            inflight_ttl_s=self._settings.inflight_ttl_s,
            max_deadline_s=self._settings.max_deadline_s,
        )

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    def wait(self, job_id: str, *, timeout_s: float) -> Outcome | None:
        return wait_for_outcome(self._redis, job_id, timeout_s=timeout_s)

    def worker_answers(self, name: str, *, timeout_s: float = 0.5) -> bool:
        """Whether the worker node `name` answers a control ping within `timeout_s`."""
        return bool(self._app.control.ping(destination=[name], timeout=timeout_s))

    def close(self) -> None:
        self._redis.close()

    def _send(self, job: CancelJob) -> None:
        self._app.send_task(
            CANCEL_TASK,
            args=[job.model_dump(mode="json")],
            task_id=job.job_id,
            queue=self._settings.queue_name,
        )

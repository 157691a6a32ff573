"""A `JobQueue` through Celery itself (`app.send_task` per job): the reference that
`workers.fastqueue.FastCeleryQueue` (the production queue) is tested against, and the
control ping."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.models import CancelJob
from orchestrator.core.settings import Settings
from workers.app import make_app
from workers.envelope import CANCEL_TASK


class CeleryQueue:
    """Sends each batch in one pipelined write (kombu's publish batch)."""

    def __init__(self, settings: Settings) -> None:
        self._queue_name = settings.queue_name
        self.app = make_app(settings)

    def send(self, jobs: Sequence[CancelJob]) -> None:
        if not jobs:
            return
        with self.app.producer_or_acquire() as producer, producer.batch(max_size=len(jobs)):
            for job in jobs:
                self.app.send_task(
                    CANCEL_TASK,
                    args=[job.model_dump(mode="json")],
                    task_id=job.job_id,
                    queue=self._queue_name,
                    producer=producer,
                )

    def worker_answers(self, name: str, *, timeout_s: float = 0.5) -> bool:
        """Whether the worker node `name` answers a control ping within `timeout_s`."""
        return bool(self.app.control.ping(destination=[name], timeout=timeout_s))

    def close(self) -> None:
        self.app.close()

"""The Python API for producers, wired to Celery: `Producer(settings)` queues on the broker
that `settings` names. The logic is `orchestrator.service.producer.Producer`."""

from __future__ import annotations

import redis

from orchestrator.core.settings import Settings
from orchestrator.service import producer as _service
from orchestrator.service.connections import Connections
from workers.queue import CeleryQueue

JobQueue = _service.JobQueue


class Producer(_service.Producer):
    """A `service.producer.Producer` whose queue is Celery's (`workers.queue.CeleryQueue`)."""

    queue: CeleryQueue

    def __init__(
        self,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        connections: Connections | None = None,
    ) -> None:
        super().__init__(settings, CeleryQueue(settings), client=client, connections=connections)

    def worker_answers(self, name: str, *, timeout_s: float = 0.5) -> bool:
        """Whether the worker node `name` answers a control ping within `timeout_s`."""
        return self.queue.worker_answers(name, timeout_s=timeout_s)


__all__ = ["JobQueue", "Producer"]

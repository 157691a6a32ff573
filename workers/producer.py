"""The Python API for producers, wired to the Celery broker: `Producer(settings)` queues on
the broker that `settings` names. The logic is `orchestrator.service.producer.Producer`.

It queues through `workers.fastqueue.FastCeleryQueue` (Celery's messages, without
importing Celery); only `worker_answers` loads Celery, for its control ping.
"""

from __future__ import annotations

import redis

from orchestrator.core.settings import Settings
from orchestrator.service import producer as _service
from orchestrator.service.connections import Connections
from orchestrator.store.client import redis_client
from workers.fastqueue import FastCeleryQueue

JobQueue = _service.JobQueue


class Producer(_service.Producer):
    """A `service.producer.Producer` whose queue is the broker's (`FastCeleryQueue`)."""

    queue: FastCeleryQueue

    def __init__(
        self,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        connections: Connections | None = None,
    ) -> None:
        # An operator's command should fail fast, not ride out a Redis restart like a worker.
        shared = client or redis_client(settings, max_connections=8, retries=2)
        super().__init__(
            settings, FastCeleryQueue(settings, client=shared), client=shared,
            connections=connections,
        )  # fmt: skip
        self._owns_shared = client is None

    def worker_answers(self, name: str, *, timeout_s: float = 0.5) -> bool:
        """Whether the worker node `name` answers a control ping within `timeout_s`."""
        return self.queue.worker_answers(name, timeout_s=timeout_s)

    def close(self) -> None:
        super().close()
        if self._owns_shared:
            self._redis.close()


__all__ = ["JobQueue", "Producer"]

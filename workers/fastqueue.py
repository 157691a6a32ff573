"""The production `JobQueue`: Celery messages pushed straight onto kombu's Redis queue list.

Each batch is one round trip: a single LPUSH of all its messages (in order, so the first
job is the first fetched), preceded once per queue object by the queue's binding, as
kombu's declare leaves it. The messages are those `app.send_task` would send
(`workers.envelope`); Celery itself is not imported, so a command that queues starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from orchestrator.core.models import CancelJob
from orchestrator.core.settings import Settings
from orchestrator.store.client import redis_client
from workers.envelope import MessageFormat, binding_keys, binding_member


class FastCeleryQueue:
    """Sends each batch in one pipelined write; no Celery import."""

    def __init__(self, settings: Settings, *, client: redis.Redis | None = None) -> None:
        self._settings = settings
        self._owns_redis = client is None
        self._redis = client or redis_client(settings, max_connections=2, retries=2)
        self.format = MessageFormat(queue=settings.queue_name)
        self._declared = False

    def send(self, jobs: Sequence[CancelJob]) -> None:
        if not jobs:
            return
        messages = self.format.encode_many(jobs)
        pipe = self._redis.pipeline(transaction=False)
        if not self._declared:
            member = binding_member(self.format.queue)
            for key in binding_keys(self.format.queue):
                pipe.sadd(key, member)
        pipe.lpush(self.format.queue, *messages)
        pipe.execute()
        self._declared = True

    def worker_answers(self, name: str, *, timeout_s: float = 0.5) -> bool:
        """Whether the worker node `name` answers a control ping (imports Celery)."""
        from workers.queue import CeleryQueue

        celery_queue = CeleryQueue(self._settings)
        try:
            return celery_queue.worker_answers(name, timeout_s=timeout_s)
        finally:
            celery_queue.close()

    def close(self) -> None:
        if self._owns_redis:
            self._redis.close()

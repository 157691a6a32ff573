"""The fast queue's messages are Celery's: same shape on Redis, and a real worker runs them.

Given the same job sent once through Celery (`CeleryQueue`, `app.send_task`) and once
through `FastCeleryQueue`, then the two entries on the Redis list have the same envelope,
headers and properties keys, the same routing, content type and body, and the queue's
binding is declared as kombu declares it. And a job queued the fast way is run to its
outcome by a real worker process.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.core.settings import Settings
from orchestrator.store.admission import build_job
from tests.integration.harness import Deployment, Sim
from workers.envelope import binding_keys
from workers.fastqueue import FastCeleryQueue
from workers.producer import Producer
from workers.queue import CeleryQueue

pytestmark = pytest.mark.integration


def _entry(client: redis.Redis, queue: str) -> dict[str, Any]:
    raw = client.rpop(queue)
    assert raw is not None
    parsed: dict[str, Any] = json.loads(raw)  # type: ignore[arg-type]
    return parsed


def test_fast_and_celery_messages_match_on_redis(redis_url: str, redis_client: redis.Redis) -> None:
    queue = f"runctl-envelope-{uuid.uuid4().hex[:6]}"
    settings = Settings(redis_url=redis_url, queue_name=queue)
    job = build_job(thread_id="thread_f", run_id="run_f", deadline_s=30, bulk_id="bulk_f")
    celery_queue, fast_queue = CeleryQueue(settings), FastCeleryQueue(settings)
    try:
        celery_queue.send([job])
        theirs = _entry(redis_client, queue)
        bindings = {key: redis_client.smembers(key) for key in binding_keys(queue)}
        redis_client.delete(*binding_keys(queue))
        fast_queue.send([job])
        ours = _entry(redis_client, queue)
        assert {key: redis_client.smembers(key) for key in binding_keys(queue)} == bindings
    finally:
        celery_queue.close()
        fast_queue.close()
        redis_client.delete(*binding_keys(queue))

    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() == theirs["properties"].keys()
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    for name in ("content-type", "content-encoding"):
        assert ours[name] == theirs[name]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(theirs["body"])
    )


def test_a_worker_runs_a_fast_queued_job(
    deployment: Deployment, producer: Producer, sim: Sim
) -> None:
    assert isinstance(producer.queue, FastCeleryQueue)
    [(thread_id, run_id)] = sim.seed(1, status="in_progress")
    submitted = producer.cancel(thread_id, run_id, deadline_s=30)
    outcome = producer.wait(submitted.job_id, timeout_s=60)
    assert outcome is not None
    assert outcome.result is Result.CANCELLED

"""The messages `workers.envelope` builds are the ones Celery and kombu would send.

The reference is Celery's own `send_task` through kombu's in-memory transport, whose
channel shares the Redis channel's envelope code (`virtual.Channel`): what it holds is the
dict that the Redis channel's `_put` serialises and LPUSHes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from kombu.transport import memory, virtual
from kombu.utils.json import dumps

from orchestrator.core.models import CancelJob
from workers.envelope import CANCEL_TASK, MessageFormat

QUEUE = "runctl-envelope-test"
PER_MESSAGE_PROPERTIES = {"delivery_tag"}  # a new uuid per message, kombu's as ours
PER_PRODUCER_PROPERTIES = {"reply_to"}  # Celery's per-app oid; never read (no results)
DIFFERENT_HEADERS = {"argsrepr", "origin"}  # a shorter repr; our process's own nodename


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    app = Celery("runctl", broker="memory://", backend=None)
    app.conf.update(task_serializer="json", accept_content=["json"], task_default_queue=QUEUE)
    yield app
    app.close()


def reference(app: Celery, job: CancelJob) -> dict[str, Any]:
    """What kombu's Redis channel would push for `send_task` of `job`, parsed."""
    app.send_task(CANCEL_TASK, args=[job.model_dump(mode="json")], task_id=job.job_id, queue=QUEUE)
    message = memory.Channel.queues[QUEUE].get_nowait()
    parsed: dict[str, Any] = json.loads(dumps(message))
    return parsed


def job(**fields: Any) -> CancelJob:
    base: dict[str, Any] = {"thread_id": "thread_abc", "run_id": "run_abc", "deadline_s": 90}
    return CancelJob(**(base | fields))


@pytest.mark.parametrize(
    "made",
    [
        job(),
        job(reason="stuck since 02:10 — ünïcode", requested_by="alice", bulk_id="bulk_x1"),
    ],
)
def test_the_envelope_matches_what_celery_and_kombu_push(
    celery_app: Celery, made: CancelJob
) -> None:
    theirs = reference(celery_app, made)
    ours = json.loads(MessageFormat(queue=QUEUE).encode(made))

    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() == theirs["properties"].keys()
    for name in ("content-type", "content-encoding"):
        assert ours[name] == theirs[name]
    for name, value in theirs["headers"].items():
        if name not in DIFFERENT_HEADERS:
            assert ours["headers"][name] == value, name
    for name, value in theirs["properties"].items():
        if name not in PER_MESSAGE_PROPERTIES | PER_PRODUCER_PROPERTIES:
            assert ours["properties"][name] == value, name
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(theirs["body"])
    )
    assert isinstance(ours["headers"]["argsrepr"], str)
    assert ours["headers"]["origin"].startswith("gen")


def test_each_message_has_its_own_delivery_tag() -> None:
    made = MessageFormat(queue=QUEUE)
    tags = [json.loads(m)["properties"]["delivery_tag"] for m in made.encode_many([job()] * 3)]
    assert len(set(tags)) == 3
    assert all(uuid.UUID(tag).version == 4 for tag in tags)


def test_kombu_reads_the_envelope_back_into_the_job(celery_app: Celery) -> None:
    made = job(reason="r", bulk_id="bulk_1")
    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        payload = json.loads(MessageFormat(queue=QUEUE).encode(made))
        message = virtual.Message(payload, channel)  # type: ignore[arg-type]
        args, kwargs, embed = message.decode()
    assert CancelJob.model_validate(args[0]) == made
    assert kwargs == {}
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert message.headers["task"] == CANCEL_TASK
    assert message.delivery_info["routing_key"] == QUEUE

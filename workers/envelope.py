"""Celery task messages (protocol v2, JSON) in kombu's Redis envelope, built without Celery.

`app.send_task` spends most of its time on what is the same for every message of a batch
(the protocol's headers, the routing, declaring the queue) and on a `saferepr` of the
arguments for its log lines. Here the shared parts are built once per `MessageFormat` and
each job costs one JSON dump of the job, one base64 and one JSON dump of the envelope.

The result is what kombu's Redis channel `_put` LPUSHes for `send_task(CANCEL_TASK,
args=[job])` on the default (anonymous) exchange: the same envelope keys, headers keys,
properties and body shape (`[args, kwargs, embed]`, base64, `application/json`), so Celery
workers, `celery inspect` and Flower read it unchanged. Two deliberate differences, neither
read by a consumer: JSON is compact (no spaces after separators), and `argsrepr` names the
job instead of repeating all its fields. `tests/unit/test_envelope.py` holds it to kombu's
own output, and the integration tests run every job through it.

This module imports neither Celery nor kombu: `runctl cancel` queues without loading them.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.core.models import CancelJob

CANCEL_TASK = "runctl.cancel"  # the name `workers.tasks` registers (also `workers.app`)
BINDING_SEPARATOR = "\x06\x16"  # kombu's Redis transport joins a binding's parts with this
_EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def binding_keys(queue: str) -> tuple[str, str]:
    """The sets in which kombu records a queue's binding when it declares it."""
    return f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"


def binding_member(queue: str) -> str:
    """The anonymous exchange's binding of `queue`: routing key, pattern, queue."""
    return BINDING_SEPARATOR.join([queue, "", queue])


def anon_nodename() -> str:
    """Celery's `origin` header for a producer that is not a worker: gen<pid>@<host>."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


@dataclass(frozen=True)
class MessageFormat:
    """What every message to one queue shares; `encode` adds what is the job's own.

    The envelope is written as text around the job's parts: ids are `SafeId`s (letters,
    digits, `_`, `-`) and the body is base64, so none of them needs JSON escaping, and
    the shared parts are JSON-encoded once, here.
    """

    queue: str
    task: str = CANCEL_TASK
    origin: str = field(default_factory=anon_nodename)
    # Celery names a reply queue per producer; a task without results never uses it.
    reply_to: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        task, origin, reply_to, queue = (
            _compact(v) for v in (self.task, self.origin, self.reply_to, self.queue)
        )
        object.__setattr__(
            self,
            "_parts",
            (
                '{"body":"',
                '","content-encoding":"utf-8","content-type":"application/json",'
                f'"headers":{{"lang":"py","task":{task},"id":"',
                '","shadow":null,"eta":null,"expires":null,"group":null,"group_index":null,'
                '"retries":0,"timelimit":[null,null],"root_id":"',
                '","parent_id":null,"argsrepr":"[<job ',
                f'>]","kwargsrepr":"{{}}","origin":{origin},"ignore_result":null,'
                '"replaced_task_nesting":0,"stamped_headers":null,"stamps":{}},'
                '"properties":{"correlation_id":"',
                f'","reply_to":{reply_to},"delivery_mode":2,"delivery_info":'
                f'{{"exchange":"","routing_key":{queue}}},"priority":0,'
                '"body_encoding":"base64","delivery_tag":"',
                '"}}',
            ),
        )

    def encode(self, job: CancelJob) -> str:
        """The envelope, as the JSON text pushed onto the queue's list."""
        p = self._parts  # type: ignore[attr-defined]
        body = b64encode(b"[[" + job.__pydantic_serializer__.to_json(job) + _BODY_TAIL)
        job_id = job.job_id
        return "".join(
            (
                p[0], body.decode("ascii"), p[1], job_id, p[2], job_id, p[3],
                job_id, " ", job.thread_id or "-", "/", job.run_id, p[4], job_id, p[5],
                _delivery_tag(), p[6],
            )
        )  # fmt: skip

    def encode_many(self, jobs: Sequence[CancelJob]) -> list[str]:
        return [self.encode(job) for job in jobs]


_BODY_TAIL = b"],{}," + _EMBED.encode() + b"]"


def _delivery_tag() -> str:
    """A random (version 4) UUID as text, as kombu's tags are, without `uuid.UUID`'s cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

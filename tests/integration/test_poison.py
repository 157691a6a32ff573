"""Poison messages put on the queue directly are refused, parked with a reason, never
unpickled, and the worker goes on serving good jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection

from orchestrator.core.models import Result
from tests.integration.harness import Deployment, Sim, Worker, outcome_of, wait_for
from workers.app import make_app
from workers.envelope import CANCEL_TASK
from workers.producer import Producer

pytestmark = pytest.mark.integration


class Trap:
    """Unpickling this would write a file: the test proves it never happens."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.path, "unpickled!"))


def dead_letters(deployment: Deployment) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "dead-letters", "--json", "--count", "500"],
        env=deployment.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_poison_is_parked_and_good_jobs_still_run(
    sim: Sim, deployment: Deployment, worker: Worker, tmp_path: Path
) -> None:
    trap = tmp_path / "trap"
    before = len(dead_letters(deployment))
    app = make_app(deployment.settings())
    bad_jobs: list[tuple[list[Any], dict[str, Any]]] = [
        ([{"job_id": "job_bad1", "thread_id": "../etc", "run_id": "run_1"}], {}),
        ([{"job_id": "job_bad2", "thread_id": "t", "run_id": "r", "deadline_s": "soon"}], {}),
        ([{"thread_id": "t", "run_id": "r"}], {}),  # no job id
        ([{"job_id": "job_bad4", "thread_id": "t" * 100_000, "run_id": "r"}], {}),
        (["not a job"], {}),
        ([], {}),
        ([{"job_id": "job_bad7", "thread_id": "t", "run_id": "r"}], {"extra": 1}),
    ]
    for args, kwargs in bad_jobs:
        app.send_task(CANCEL_TASK, args=args, kwargs=kwargs, queue=deployment.queue)
    with Connection(deployment.redis_url) as connection:
        producer = connection.Producer(serializer="pickle")
        producer.publish(
            [Trap(trap)],
            routing_key=deployment.queue,
            headers={"task": CANCEL_TASK, "id": "job_pickled", "lang": "py"},
        )
    app.close()
    # Entries pushed onto the queue's list by hand, bypassing kombu: not even an envelope.
    raw_entries = [
        b"not json at all",
        b'["a list, not an envelope"]',
        b'{"body": "no properties"}',
        b'{"properties": {}}',  # no delivery tag
        b'{"properties": {"delivery_tag": "t1"}}',  # no delivery info
        b'{"properties": {"delivery_tag": "t2", "delivery_info": "a string"}}',
    ]
    client = redis.Redis.from_url(deployment.redis_url)
    client.lpush(deployment.queue, *raw_entries)
    client.close()

    def all_parked() -> list[dict[str, Any]] | None:
        letters = dead_letters(deployment)
        new = letters[: len(letters) - before]  # newest first
        return new if len(new) >= len(bad_jobs) + 1 + len(raw_entries) else None

    parked = wait_for(all_parked, timeout_s=60, what="every poison message parked")
    reasons = " | ".join(entry["reason"] for entry in parked)
    assert "thread_id" in reasons
    assert "deadline_s" in reasons
    assert "job_id" in reasons
    assert "untrusted content of type pickle" in reasons
    assert reasons.count("not a message envelope") == len(raw_entries)
    assert not trap.exists()  # the pickle was never loaded

    thread_id, run_id = sim.seed_one(status="in_progress")
    good = Producer(deployment.settings())
    assert outcome_of(good, good.cancel(thread_id, run_id).job_id).result is Result.CANCELLED
    good.close()
    assert worker.process.poll() is None

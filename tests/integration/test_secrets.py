"""The API key never leaves the worker's environment: not in Redis, outcomes, nor logs."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from orchestrator import keys
from orchestrator.embedded_redis import EmbeddedRedis, free_port
from orchestrator.models import Result
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    every_value,
    outcome_of,
    start_worker,
)
from workers.producer import Producer

pytestmark = pytest.mark.integration


def test_no_api_key_in_redis_outcomes_or_logs(
    sim: Sim, producer: Producer, worker: Worker, redis_client: redis.Redis
) -> None:
    # Every path that writes: success, refusal (401 says "API key"), transient errors.
    runs = [
        sim.seed_one(status="in_progress"),
        sim.seed_one(
            status="in_progress", fail_cancel=[{"status": 401, "code": "invalid_api_key"}]
        ),
        sim.seed_one(status="in_progress", fail_cancel=[{"status": 503}, {"status": 429}]),
    ]
    outcomes = [outcome_of(producer, producer.cancel(t, r).job_id) for t, r in runs]
    assert [o.result for o in outcomes] == [Result.CANCELLED, Result.REJECTED, Result.CANCELLED]

    secret = sim.api_key.encode()
    values = every_value(redis_client)
    assert any(keys.OUTCOME_STREAM.encode() == v for v in values)  # the scan saw the stream
    assert not [v for v in values if secret in v]
    for outcome in outcomes:
        assert sim.api_key not in outcome.model_dump_json()
    log = worker.log()
    assert outcomes[0].job_id in log  # the scan saw the worker's log lines
    assert sim.api_key not in log


def test_a_redis_password_works_and_is_never_printed(sim: Sim, tmp_path: Path) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    server = EmbeddedRedis(
        port=free_port(), directory=tmp_path / "redis", password=password
    ).start()
    deployment = Deployment(
        redis_url=server.url,
        queue=f"runctl-pw-{secrets.token_hex(3)}",
        api_key=sim.api_key,
        base_url=sim.base_url,
    )
    worker = start_worker(deployment, tmp_path)
    try:
        thread_id, run_id = sim.seed_one(status="in_progress")
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "cancel", thread_id, run_id, "--wait"],
            env=deployment.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        wrong = subprocess.run(
            [sys.executable, "-m", "orchestrator", "cancel", thread_id, run_id],
            env=deployment.env() | {"RUNCTL_REDIS_URL": server.url.replace(password, "nope")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        worker.stop()
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout
    assert wrong.returncode != 0
    for text in (done.stdout, done.stderr, wrong.stdout, wrong.stderr, worker.log()):
        assert password not in text

"""`runctl` as an operator types it: exit codes, JSON output, and bad input refused early."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator

import pytest
import redis

from orchestrator import keys
from tests.integration.harness import Deployment, Sim, Worker

pytestmark = pytest.mark.integration


def runctl(
    deployment: Deployment, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    env = deployment.env()
    del env["OPENAI_API_KEY"]  # an operator's shell needs no key to queue a cancel
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_cancel_wait_prints_the_outcome_and_exits_0(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress")
    done = runctl(deployment, "cancel", thread_id, run_id, "--wait", "--json", "--reason", "ops")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines[-1]["result"] == "cancelled"
    assert lines[-1]["reason"] == "ops"


def test_cancel_wait_exit_code_names_the_result(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    done = runctl(deployment, "cancel", "thread_missing", "run_missing", "--wait")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "not_found" in done.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["../etc", "run_1"], "thread_id"),
        (["thread_1", "a/b"], "run_id"),
        (["thread_1", "run_1", "--deadline", "0"], "deadline_s"),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(
    deployment: Deployment, redis_client: redis.Redis, args: list[str], field: str
) -> None:
    before = redis_client.llen(deployment.queue)
    done = runctl(deployment, "cancel", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {field}: ")
    assert redis_client.llen(deployment.queue) == before
    assert not list(redis_client.scan_iter(match=keys.inflight("*", "../etc", "*")))


def test_watch_from_start_prints_published_outcomes(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    thread_id, run_id = sim.seed_one(status="completed")
    done = runctl(deployment, "cancel", thread_id, run_id, "--wait", "--json")
    job_id = json.loads(done.stdout.splitlines()[0])["job_id"]
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "watch", "--json", "--from-start"],
        env=deployment.env(),
        stdout=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            assert watcher.stdout is not None
            seen = [json.loads(line)["job_id"] for line in _lines_until(watcher.stdout, job_id)]
            assert seen[-1] == job_id
        finally:
            watcher.kill()


def _lines_until(stream: Iterable[str], job_id: str) -> Iterator[str]:
    """The watcher's lines up to the one naming `job_id` (pytest's timeout bounds the wait)."""
    for line in stream:
        yield line
        if json.loads(line)["job_id"] == job_id:
            return

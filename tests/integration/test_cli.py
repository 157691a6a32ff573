"""`runctl` as an operator types it: exit codes, JSON output, and bad input refused early."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from orchestrator.devkit.embedded_redis import free_port
from orchestrator.store import keys
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
    deployment: Deployment, worker: Worker, redis_client: redis.Redis, args: list[str], field: str
) -> None:
    # A queue no worker reads, so that anything queued would still be there to see.
    unread = replace(deployment, queue=f"runctl-unread-{uuid.uuid4().hex[:6]}")
    good = runctl(unread, "cancel", "thread_1", f"run_{uuid.uuid4().hex}")
    assert good.returncode == 0, good.stderr
    assert redis_client.llen(unread.queue) == 1  # the check below can see a queued job
    done = runctl(unread, "cancel", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {field}: ")
    assert redis_client.llen(unread.queue) == 1
    assert not list(redis_client.scan_iter(match=keys.inflight("*", "../etc", "*")))
    # The good job was accepted: hand it to the worker, so that it ends with its outcome.
    redis_client.lmove(unread.queue, deployment.queue, "RIGHT", "LEFT")


def test_redis_down_is_one_clear_line_and_nothing_queued(deployment: Deployment) -> None:
    down = replace(deployment, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    done = runctl(down, "cancel", "thread_1", "run_1", timeout_s=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Redis did not answer")
    assert "Traceback" not in done.stderr


def test_a_worker_without_a_key_refuses_to_start(deployment: Deployment) -> None:
    done = runctl(deployment, "worker", timeout_s=60)
    assert done.returncode == 1
    assert "OPENAI_API_KEY is not set" in done.stderr


def test_a_key_with_a_trailing_newline_is_refused_without_being_shown(
    deployment: Deployment,
) -> None:
    env = deployment.env()
    env["OPENAI_API_KEY"] = deployment.api_key + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "trailing newline" in done.stderr
    assert deployment.api_key not in done.stderr + done.stdout


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


def test_job_and_run_answer_what_happened_human_and_json(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress")
    done = runctl(deployment, "cancel", thread_id, run_id, "--wait", "--json")
    job_id = json.loads(done.stdout.splitlines()[0])["job_id"]

    as_json = runctl(deployment, "job", job_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    assert (view["state"], view["outcome"]["result"]) == ("done", "cancelled")
    human = runctl(deployment, "job", job_id)
    assert "cancelled" in human.stdout
    unknown = runctl(deployment, "job", "job_unknown")
    assert unknown.returncode == 3
    assert "no job job_unknown" in unknown.stderr

    run = json.loads(runctl(deployment, "run", thread_id, run_id, "--json").stdout)
    assert [o["job_id"] for o in run["outcomes"]] == [job_id]
    assert run["in_flight"] is None
    assert "cancelled" in runctl(deployment, "run", thread_id, run_id).stdout
    bad = runctl(deployment, "run", thread_id, "a/b")
    assert bad.returncode == 2
    assert "run_id" in bad.stderr


def test_version_is_printed(deployment: Deployment) -> None:
    shown = runctl(deployment, "--version")
    assert shown.returncode == 0
    assert shown.stdout.startswith("runctl ")


def test_runctl_serve_answers_with_its_openapi_and_takes_a_cancel(
    sim: Sim, deployment: Deployment, worker: Worker, tmp_path: Path
) -> None:
    import httpx

    from orchestrator.core.access import hash_token
    from tests.integration.harness import wait_for

    port = free_port()
    env = deployment.env()
    del env["OPENAI_API_KEY"]
    tokens = [{"name": "ci", "role": "operator", "sha256": hash_token("tok-serve")}]
    env["RUNCTL_API_TOKENS_JSON"] = json.dumps(tokens)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout_s=30, interval_s=0.1, what="runctl serve")
        auth = {"Authorization": "Bearer tok-serve"}
        assert httpx.get(f"{base}/openapi.json").status_code == 401
        schema = httpx.get(f"{base}/openapi.json", headers=auth).json()
        assert "/v1/cancels" in schema["paths"]
        assert httpx.get(f"{base}/readyz", headers=auth).json()["ready"] is True
        thread_id, run_id = sim.seed_one(status="in_progress")
        reply = httpx.post(
            f"{base}/v1/cancels", json={"thread_id": thread_id, "run_id": run_id}, headers=auth
        )
        assert reply.status_code == 202, reply.text
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_hash_token_prints_the_sha256_to_configure(deployment: Deployment) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "orchestrator", "api", "hash-token"],
        input="T\n", env=deployment.env(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert made.stdout.strip() == hashlib.sha256(b"T").hexdigest()

"""The API key never leaves the worker's environment: not in Redis, outcomes, nor logs."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.devkit.embedded_redis import EmbeddedRedis, free_port
from orchestrator.store import keys
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    every_value,
    outcome_of,
    start_worker,
)
from tests.integration.tls_proxy import TlsProxy
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


@pytest.mark.parametrize("tls", [False, True], ids=["redis", "rediss"])
def test_a_redis_password_works_and_is_never_printed(sim: Sim, tmp_path: Path, tls: bool) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    server = EmbeddedRedis(
        port=free_port(), directory=tmp_path / "redis", password=password
    ).start()
    proxy = TlsProxy(server.port, tmp_path).start() if tls else None
    if proxy is None:
        url = server.url
        refused_url, refusal = url.replace(password, "nope"), "refused the password"
    else:
        url = f"rediss://:{password}@127.0.0.1:{proxy.port}/0?ssl_ca_certs={proxy.ca_path}"
        # Without the test CA the server's certificate is refused: TLS is really checked.
        refused_url, refusal = url.split("?", 1)[0], "TLS certificate is not trusted"
    deployment = Deployment(
        redis_url=url,
        queue=f"runctl-pw-{secrets.token_hex(3)}",
        api_key=sim.api_key,
        base_url=sim.base_url,
    )

    def cancel(*args: str, redis_url: str = url) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", "cancel", *args],
            env=deployment.env() | {"RUNCTL_REDIS_URL": redis_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    worker = start_worker(deployment, tmp_path)
    try:
        thread_id, run_id = sim.seed_one(status="in_progress")
        done = cancel(thread_id, run_id, "--wait")
        refused = cancel(thread_id, run_id, redis_url=refused_url)
    finally:
        worker.stop()
        if proxy is not None:
            proxy.stop()
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout
    assert proxy is None or proxy.handshakes > 0  # the worker and the CLI went through TLS
    assert refused.returncode != 0
    assert refusal in refused.stderr
    for text in (done.stdout, done.stderr, refused.stdout, refused.stderr, worker.log()):
        assert password not in text

"""The API key never leaves the worker's environment: not in Redis, outcomes, nor logs."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from orchestrator import keys
from orchestrator.models import Result
from tests.integration.harness import Sim, Worker, outcome_of
from workers.producer import Producer

pytestmark = pytest.mark.integration


def every_value(client: Any) -> list[bytes]:
    """Every key name and every byte of every value, whatever its type."""
    found: list[bytes] = []
    for key in client.scan_iter(count=1000):
        found += [key, *values_of(client, key)]
    return found


def values_of(client: Any, key: bytes) -> list[bytes]:
    # redis-py's reply types are unions of everything; these are raw bytes (no decoding).
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [item for pair in client.hgetall(key).items() for item in pair]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        entries = client.xrange(key)
        return [item for _, fields in entries for pair in fields.items() for item in pair]
    if kind == b"none":
        return []  # deleted between the scan and the read
    raise AssertionError(f"unexpected Redis type {kind!r} at {key!r}")


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

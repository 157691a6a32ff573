"""The fleet's settle-time histogram in Redis: observations add up, and decay with age.

Given a connection's histogram, when runs settle and time passes (an injected clock), then
a snapshot weighs a fresh observation 1, one a half-life old 1/2, and a histogram left a
long time is rescaled without losing its shape.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from orchestrator.core.settling import bin_of
from orchestrator.store.settling import SettleTimes, connection_id

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now_s


def test_observations_add_up_and_decay(redis_client: redis.Redis) -> None:
    clock = Clock()
    connection = connection_id("assistants", f"http://sim-{uuid.uuid4().hex}/v1")
    times = SettleTimes(redis_client, connection, clock=clock, half_life_s=100.0, refresh_s=0.0)
    times.record(0.5, 0.75)
    times.record(0.5, 0.55)
    weights = times.snapshot().weights
    assert sum(weights) == pytest.approx(2.0)
    assert weights[bin_of(0.55)] == pytest.approx(1.2)

    clock.now_s += 100.0
    assert sum(times.snapshot().weights) == pytest.approx(1.0)  # one half-life later
    times.record(1.0, 1.0)
    assert sum(times.snapshot().weights) == pytest.approx(2.0)

    clock.now_s += 100.0 * 61  # past the rescale point: the landmark moves
    times.record(1.0, 1.0)
    weights = times.snapshot().weights
    assert weights[bin_of(1.0)] == pytest.approx(1.0 + 2.0**-61, rel=1e-9)
    assert sum(weights) == pytest.approx(1.0)


def test_the_key_names_no_url(redis_client: redis.Redis) -> None:
    secretish = f"https://user:pw-{uuid.uuid4().hex}@example.test/v1"
    times = SettleTimes(redis_client, connection_id("assistants", secretish), refresh_s=0.0)
    times.record(0.1, 0.2)
    assert not [k for k in redis_client.scan_iter("runctl:settle:*") if b"pw-" in k]

"""The fleet's settle-time histogram in Redis: observations add up, and decay with age.

Given a connection's histogram, when runs settle and time passes (an injected clock), then
a snapshot weighs a fresh observation 1, one a half-life old 1/2, and a histogram left a
long time is rescaled without losing its shape.
"""

from __future__ import annotations

import uuid

import pytest
import redis

from orchestrator.core.settling import bin_of, spread
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
    times = SettleTimes(
        redis_client, connection, clock=clock, half_life_s=100.0, refresh_s=0.0, flush_every_s=0.0
    )
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


def test_observations_within_a_second_are_written_together(redis_client: redis.Redis) -> None:
    clock = Clock()
    connection = connection_id("assistants", f"http://sim-{uuid.uuid4().hex}/v1")
    no_decay_s = 1e9
    writer = SettleTimes(
        redis_client, connection, clock=clock, half_life_s=no_decay_s, flush_every_s=1.0
    )
    reader = SettleTimes(
        redis_client, connection, clock=clock, half_life_s=no_decay_s, refresh_s=0.0
    )
    writer.record(0.5, 0.5)  # the first is written at once
    clock.now_s += 0.5
    writer.record(0.5, 0.55)
    writer.record(0.5, 0.55)
    assert sum(reader.snapshot().weights) == pytest.approx(1.0, rel=1e-3)  # two wait
    clock.now_s += 0.5
    writer.record(1.0, 1.0)  # a second after the last write: all three go in one call
    weights = reader.snapshot().weights
    assert sum(weights) == pytest.approx(4.0, rel=1e-3)
    expected = [0.0] * len(weights)
    for after_s, by_s in [(0.5, 0.5), (0.5, 0.55), (0.5, 0.55), (1.0, 1.0)]:
        for i, weight in spread(after_s, by_s).items():
            expected[i] += weight
    assert weights == pytest.approx(expected, rel=1e-6)
    clock.now_s += 0.1
    writer.record(2.0, 2.0)
    writer.flush()  # what a stopping worker calls
    assert sum(reader.snapshot().weights) == pytest.approx(5.0, rel=1e-3)


def test_the_key_names_no_url(redis_client: redis.Redis) -> None:
    secretish = f"https://user:pw-{uuid.uuid4().hex}@example.test/v1"
    times = SettleTimes(redis_client, connection_id("assistants", secretish), refresh_s=0.0)
    times.record(0.1, 0.2)
    assert not [k for k in redis_client.scan_iter("runctl:settle:*") if b"pw-" in k]

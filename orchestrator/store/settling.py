"""A provider connection's settle times, learned by the whole fleet: a decayed histogram in
one Redis hash (the logic is `core.settling`'s; this module only keeps it).

Learning is best effort: when Redis does not answer, the schedule keeps the histogram it
has (or none: then the lifecycle's own cadence), and an observation is dropped.

Observations are summed in the process and written at most once per `FLUSH_EVERY_S` (one
script call for all of them): an observation touches about twenty bins, and writing each
one as it came cost a worker 23 Redis commands per job. A worker that stops loses at most
that last second of observations, which the fleet's histogram does not miss.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import redis

from orchestrator.core.settling import (
    BIN_S,
    BINS,
    HALF_LIFE_S,
    SettleHistogram,
    decay_weight,
    spread,
)
from orchestrator.store import keys, scripts

log = logging.getLogger(__name__)

LANDMARK_FIELD = "landmark"
KEEP_S = 7 * 24 * 3600  # a connection unused for a week starts over
REFRESH_S = 2.0  # how stale a worker's copy of the histogram may be
FLUSH_EVERY_S = 1.0  # how long a worker's observations may wait to be written


def connection_id(name: str, base_url: str) -> str:
    """A connection's name in keys: its name (runctl.toml's `[providers.<name>]`) and a
    digest of its base URL (a URL may carry what is not ours to store; a connection pointed
    elsewhere starts a histogram of its own)."""
    return f"{name}:{hashlib.sha256(base_url.encode()).hexdigest()[:16]}"


class SettleTimes:
    """One connection's histogram: `snapshot()` (cached `refresh_s`), `record()` (written
    in batches, at most `flush_every_s` late) and `flush()`."""

    def __init__(
        self,
        client: redis.Redis,
        connection: str,
        *,
        clock: Callable[[], float] = time.time,
        half_life_s: float = HALF_LIFE_S,
        refresh_s: float = REFRESH_S,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self._redis = client
        self._key = keys.settle_times(connection)
        self._clock = clock
        self._half_life_s = half_life_s
        self._refresh_s = refresh_s
        self._observe = scripts.register(client, "settle_observe")
        self._cached = SettleHistogram.empty()
        self._read_at = float("-inf")
        self._flush_every_s = flush_every_s
        self._pending: dict[int, float] = {}  # bin -> weight not yet written
        self._flushed_at = float("-inf")

    def snapshot(self) -> SettleHistogram:
        """The histogram, scaled so that an observation made now weighs 1."""
        now = self._clock()
        if now - self._read_at < self._refresh_s:
            return self._cached
        self._read_at = now
        try:
            raw: dict[bytes, bytes] = self._redis.hgetall(self._key)  # type: ignore[assignment]
        except redis.RedisError as exc:
            log.warning("settle times not read (%s); keeping the last copy", type(exc).__name__)
            return self._cached
        self._cached = self._parse(raw, now)
        return self._cached

    def record(self, after_s: float, by_s: float) -> None:
        """A run settled between `after_s` and `by_s` after its cancel was accepted."""
        for i, weight in spread(after_s, by_s, bin_s=BIN_S, bins=BINS).items():
            self._pending[i] = self._pending.get(i, 0.0) + weight
        if self._clock() - self._flushed_at >= self._flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Write the observations recorded since the last write, in one script call."""
        pending, self._pending = self._pending, {}
        self._flushed_at = self._clock()
        if not pending:
            return
        pairs: list[str | float] = []
        for i, weight in pending.items():
            pairs += [str(i), weight]
        try:
            self._observe(
                keys=[self._key],
                args=[self._flushed_at, self._half_life_s, KEEP_S, LANDMARK_FIELD, *pairs],
            )
        except redis.RedisError as exc:
            log.warning("settle times not recorded (%s)", type(exc).__name__)

    def _parse(self, raw: dict[bytes, bytes], now: float) -> SettleHistogram:
        landmark = raw.pop(LANDMARK_FIELD.encode(), None)
        if landmark is None:
            return SettleHistogram.empty()
        scale = 1.0 / decay_weight(now, float(landmark), half_life_s=self._half_life_s)
        weights = [0.0] * BINS
        for field, value in raw.items():
            index = int(field)
            if 0 <= index < BINS:
                weights[index] = float(value) * scale
        return SettleHistogram(tuple(weights), BIN_S)

"""The notifier's Redis side: reading the service's streams through one consumer group,
the deliveries waiting for another attempt, those that failed for good, and the open
PagerDuty incidents.

Nothing is lost when a notifier dies: a stream entry stays pending in the group until
its deliveries are settled (delivered, scheduled again, or failed), and another notifier
takes it over after an idle time (`XAUTOCLAIM`); a delivery taken for another attempt is
leased (its due time pushed ahead), so it comes due again if its notifier dies. Settling is
one MULTI: the acknowledgement and what it leads to are written together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from orchestrator.store import keys
from orchestrator.store.keys import text

STREAMS = (keys.OUTCOME_STREAM, keys.EVENTS, keys.ALERTS, keys.BULK_FINISHED)
"""What the notifier reads, each through the NOTIFY_GROUP consumer group."""

FAILED_KEEP = 10_000  # deliveries kept in the failed list (the oldest drop off)

# KEYS: due, deliveries. ARGV: now_s, lease_until_s, limit. Leases and returns the due ones.
_TAKE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = body
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: failed, deliveries, due. ARGV: the failed entry exactly, its id, the delivery to
# schedule, when. Moves one failed delivery back to the due set, once.
_REPLAY = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Entry:
    """One stream entry read through the group; `fields` None when it was trimmed away."""

    stream: str
    entry_id: str
    fields: dict[str, str] | None


@dataclass
class Settlement:
    """What a batch of work came to, written in one MULTI."""

    acks: list[Entry] = field(default_factory=list)
    scheduled: list[tuple[str, float, str]] = field(default_factory=list)  # id, due_s, json
    delivered: list[str] = field(default_factory=list)  # ids that landed
    failed: list[tuple[str, str]] = field(default_factory=list)  # id, failed entry json
    # PagerDuty incidents by run: the open dedup keys, or None once the run ended.
    incidents: dict[str, list[str] | None] = field(default_factory=dict)


class NotifyStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._take_due = client.register_script(_TAKE_DUE)
        self._replay = client.register_script(_REPLAY)

    def ensure_groups(self) -> None:
        """Create the group on each stream (from now on: history is not replayed)."""
        for stream in STREAMS:
            try:
                self._redis.xgroup_create(stream, keys.NOTIFY_GROUP, id="$", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, consumer: str, *, count: int, block_ms: int) -> list[Entry]:
        """New entries for this consumer (they stay pending until settled)."""
        streams: Any = dict.fromkeys(STREAMS, ">")
        # block=0 would wait for ever: None does not wait at all.
        reply = self._redis.xreadgroup(
            keys.NOTIFY_GROUP, consumer, streams, count=count, block=block_ms or None
        )
        return [
            Entry(text(stream), text(entry_id), _fields(raw))
            for stream, entries in cast(list[Any], reply or [])
            for entry_id, raw in entries
        ]

    def claim(self, consumer: str, *, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries another consumer (a dead notifier) held longer than `min_idle_ms`."""
        claimed: list[Entry] = []
        for stream in STREAMS:
            reply: Any = self._redis.xautoclaim(
                stream, keys.NOTIFY_GROUP, consumer, min_idle_ms, "0-0", count=count
            )
            for entry_id, raw in reply[1]:
                claimed.append(Entry(stream, text(entry_id), _fields(raw)))
            deleted = reply[2] if len(reply) > 2 else []
            claimed += [Entry(stream, text(entry_id), None) for entry_id in deleted]
        return claimed

    def settle(self, work: Settlement) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for delivery_id, due_s, body in work.scheduled:
            pipe.hset(keys.NOTIFY_DELIVERIES, delivery_id, body)
            pipe.zadd(keys.NOTIFY_DUE, {delivery_id: due_s})
        done = work.delivered + [delivery_id for delivery_id, _ in work.failed]
        if done:
            pipe.zrem(keys.NOTIFY_DUE, *done)
            pipe.hdel(keys.NOTIFY_DELIVERIES, *done)
        if work.failed:
            pipe.lpush(keys.NOTIFY_FAILED, *(body for _, body in work.failed))
            pipe.ltrim(keys.NOTIFY_FAILED, 0, FAILED_KEEP - 1)
        for name, dedup_keys in work.incidents.items():
            if dedup_keys is None:
                pipe.hdel(keys.NOTIFY_INCIDENTS, name)
            else:
                pipe.hset(keys.NOTIFY_INCIDENTS, name, json.dumps(sorted(set(dedup_keys))))
        for entry in work.acks:
            pipe.xack(entry.stream, keys.NOTIFY_GROUP, entry.entry_id)
        pipe.execute()

    def take_due(self, *, now_s: float, lease_s: float, limit: int) -> list[str]:
        """The deliveries due by `now_s` (JSON), each leased for `lease_s`."""
        reply = self._take_due(
            keys=[keys.NOTIFY_DUE, keys.NOTIFY_DELIVERIES],
            args=[repr(now_s), repr(now_s + lease_s), limit],
        )
        return [text(body) for body in cast(list[Any], reply)]

    def incidents(self, names: Sequence[str]) -> dict[str, list[str]]:
        """The open dedup keys under each name (absent names: none)."""
        if not names:
            return {}
        raw = cast(list[Any], self._redis.hmget(keys.NOTIFY_INCIDENTS, list(names)))
        return {n: json.loads(r) for n, r in zip(names, raw, strict=True) if r is not None}

    def failed(self, count: int) -> list[str]:
        """The newest `count` deliveries that failed for good (JSON)."""
        rows = cast(list[Any], self._redis.lrange(keys.NOTIFY_FAILED, 0, count - 1))
        return [text(row) for row in rows]

    def replay(self, failed_entry: str, delivery_id: str, delivery: str, due_s: float) -> bool:
        """Move one failed delivery back for another attempt; False if it was not there."""
        moved = self._replay(
            keys=[keys.NOTIFY_FAILED, keys.NOTIFY_DELIVERIES, keys.NOTIFY_DUE],
            args=[failed_entry, delivery_id, delivery, repr(due_s)],
        )
        return bool(moved)

    def waiting(self) -> int:
        """How many deliveries wait for another attempt."""
        count: Any = self._redis.zcard(keys.NOTIFY_DUE)
        return int(count)

    def pending(self) -> int:
        """Stream entries read by some notifier and not yet settled."""
        total = 0
        for stream in STREAMS:
            try:
                info: Any = self._redis.xpending(stream, keys.NOTIFY_GROUP)
            except redis.ResponseError:
                continue
            total += int(info.get("pending", 0))
        return total


def _fields(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    return {text(k): text(v) for k, v in raw.items()}

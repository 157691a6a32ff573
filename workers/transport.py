"""kombu's Redis transport with a fetch that a killed worker cannot lose.

kombu takes a message with BRPOP and only then records it in its `unacked` hash, in a
second command. A worker killed in between (a window that spans the time the reply waits in
the socket while other greenlets run) takes the message with it: it is in neither the queue
nor `unacked`, and nothing ever brings it back (celery/kombu#305, celery/celery#4354). Our
own fault test lost 2 jobs in 2,000 this way under 5 SIGKILLs.

This transport fetches with BLMOVE instead, which moves the message from the queue into a
fetch list of the channel's own, atomically. Recording it in `unacked` and removing it from
the fetch list is then one MULTI. A message is therefore always in the queue, in a fetch
list or in `unacked`. A message left in a fetch list is stranded (its worker died between
the two steps): `FetchReclaimer`, run by every worker's restore sweep, puts it back at the
head of its queue once it has seen it there on two sweeps in a row. At worst, a slow but
live worker's message is handed out twice, which the outcome guard makes harmless.

Limits: one queue per consuming channel and no priorities (BLMOVE reads one list); a
channel consuming several queues falls back to kombu's BRPOP. Needs Redis 6.2 or newer.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads

from orchestrator import keys
from orchestrator.deadletters import DeadLetters

log = logging.getLogger(__name__)

TRANSPORT = "workers.transport:Transport"  # the name Celery's `broker_transport` takes
REGISTER_EVERY_S = 30.0  # how often a live channel says its fetch list is still in use
FORGET_AFTER_S = 600.0  # an empty fetch list unannounced this long belongs to no one

# KEYS: fetch list, queue. ARGV: the message. Moves it back to the head of its queue, once.
_RECLAIM = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


# kombu's stubs (celery-types) omit the private parts overridden here: typed loosely.
_RedisQoS: Any = kombu_redis.QoS
_RedisChannel: Any = kombu_redis.Channel
_RedisTransport: Any = kombu_redis.Transport


class QoS(_RedisQoS):  # type: ignore[misc]
    def append(self, message: Any, delivery_tag: str) -> None:
        """Record the message in `unacked` and take it off the fetch list in one MULTI."""
        channel: Channel = self.channel
        fetched, channel.fetched = channel.fetched, None
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, record)
            if fetched is not None:
                pipe.lrem(channel.fetch_key, 1, fetched)
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)


class Channel(_RedisChannel):  # type: ignore[misc]
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("workers.transport does not support global_keyprefix")
        self.fetch_key = keys.fetching(uuid.uuid4().hex)
        self.fetched: bytes | None = None  # taken by BLMOVE, not yet in `unacked`
        self._fetch_queue: str | None = None
        self._registered_at = float("-inf")

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if len(queues) != 1 or len(self.priority_steps) != 1:
            self._fetch_queue = None
            super()._brpop_start(timeout)
            return
        self._fetch_queue = queues[0]
        self._announce(queues[0])
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()
        wait_s = self.brpop_timeout if timeout is None else timeout
        self.client.connection.send_command(
            "BLMOVE", queues[0], self.fetch_key, "RIGHT", "LEFT", wait_s or 0
        )

    def _brpop_read(self, **options: Any) -> bool:
        queue = self._fetch_queue
        if queue is None:
            return bool(super()._brpop_read(**options))
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # reconnect on the next fetch
                raise
            if item is None:
                raise virtual.Empty()
            try:
                payload = loads(item)
                if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
                    raise ValueError("not a kombu message envelope")
            except Exception as exc:  # anything pushed onto the list by hand
                self._park(item, exc)
                raise virtual.Empty() from None
            self.fetched = item
            self._queue_cycle.rotate(queue)
            self.connection._deliver(payload, queue)
            if self.fetched is not None:
                # A consumer without acks (Celery's control replies) took it as it came:
                # nothing went to `unacked`, so nothing is left to reclaim.
                self.fetched = None
                with self.conn_or_acquire() as client:
                    client.lrem(self.fetch_key, 1, item)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _poll_error(self, type: str, **options: Any) -> None:
        if type == "BRPOP" and self._fetch_queue is not None:
            # A fetch's reply after a socket error is dropped here, but the message it
            # carried stays in the fetch list for the reclaimer.
            self.client.parse_response(self.client.connection, "BLMOVE")
            return
        super()._poll_error(type, **options)

    def _announce(self, queue: str) -> None:
        """Say, every REGISTER_EVERY_S, that this fetch list is in use, and for which queue."""
        now = time.time()
        if now - self._registered_at < REGISTER_EVERY_S:
            return
        entry = json.dumps({"queue": queue, "announced_at": now})
        with self.conn_or_acquire() as client:
            client.hset(keys.FETCHERS, self.fetch_key, entry)
        self._registered_at = now

    def _park(self, item: bytes, exc: Exception) -> None:
        """Move an envelope that is not a message from the fetch list to the dead letters."""
        reason = f"not a message envelope: {type(exc).__name__}"
        log.error("refused a raw queue entry: %s", reason)
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()
            DeadLetters(client).park(reason, body=item, pipe=pipe)
            pipe.lrem(self.fetch_key, 1, item)
            pipe.execute()


class Transport(_RedisTransport):  # type: ignore[misc]
    Channel = Channel


class FetchReclaimer:
    """Puts back messages stranded in fetch lists. One per worker process; not thread-safe.

    A message is stranded when it stays in a fetch list from one `sweep` to the next: a
    live channel moves what it fetched to `unacked` within milliseconds.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._reclaim = client.register_script(_RECLAIM)
        self._seen: dict[str, set[bytes]] = {}

    def sweep(self, *, now_s: float) -> int:
        """One look at every fetch list; returns how many messages went back to a queue."""
        fetchers: dict[bytes, bytes] = self._redis.hgetall(keys.FETCHERS)  # type: ignore[assignment]
        pipe = self._redis.pipeline(transaction=False)
        for fetch_key in fetchers:
            pipe.lrange(fetch_key, 0, -1)
        contents: list[list[bytes]] = pipe.execute()
        reclaimed = 0
        seen: dict[str, set[bytes]] = {}
        for (raw_key, raw_entry), items in zip(fetchers.items(), contents, strict=True):
            key = keys.text(raw_key)
            entry = json.loads(raw_entry)
            before = self._seen.get(key, set())
            for item in items:
                if item in before:
                    reclaimed += self._reclaim(keys=[key, entry["queue"]], args=[item])
            seen[key] = {item for item in items if item not in before}
            if not items and now_s - float(entry["announced_at"]) > FORGET_AFTER_S:
                self._redis.hdel(keys.FETCHERS, key)
        self._seen = seen
        if reclaimed:
            log.warning("put back %d message(s) stranded by a dead worker's fetch", reclaimed)
        return reclaimed

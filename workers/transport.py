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

import contextlib
import json
import logging
import time
import uuid
import weakref
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads

from orchestrator.core.telemetry import NO_TELEMETRY
from orchestrator.store import keys, scripts
from orchestrator.store.client import PrimaryConnection
from orchestrator.store.deadletters import DeadLetters
from orchestrator.store.leases import Leases

log = logging.getLogger(__name__)

TRANSPORT = "workers.transport:Transport"  # the name Celery's `broker_transport` takes
SENTINEL_TRANSPORT = "workers.transport:SentinelTransport"  # the same over Redis Sentinel
REGISTER_EVERY_S = 30.0  # how often a live channel says its fetch list is still in use
FORGET_AFTER_S = 600.0  # an empty fetch list unannounced this long belongs to no one
REFUSED_PAUSE_S = 1.0  # after Redis refuses a fetch (full memory), before the next
WORKER_ID_OPTION = "runctl_worker_id"  # transport option: the consuming process's lease id

# Registered on no client: each call names the connection it runs on.
_ACK_SCRIPT = scripts.unbound("lease_ack")
_RETURN_SCRIPT = scripts.unbound("lease_return")


# kombu's stubs (celery-types) omit the private parts overridden here: typed loosely.
_RedisQoS: Any = kombu_redis.QoS
_RedisChannel: Any = kombu_redis.Channel
_RedisTransport: Any = kombu_redis.Transport
_RedisSentinelChannel: Any = kombu_redis.SentinelChannel
_RedisSentinelTransport: Any = kombu_redis.SentinelTransport


class QoS(_RedisQoS):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _LIVE_QOS.add(self)

    def held_in_memory(self) -> set[str]:
        """The delivery tags this channel has handed to its consumer and not yet settled."""
        return {tag for tag in list(self._delivered) if tag not in self._dirty}

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record the message in `unacked`, as held by this worker, and take it off the
        fetch list, in one MULTI."""
        channel: Channel = self.channel
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, record)
            if channel.worker_id is not None:
                pipe.hset(keys.OWNERS, delivery_tag, channel.worker_id)
            if channel.fetched is not None:
                pipe.lrem(channel.fetch_key, 1, channel.fetched)
            pipe.execute()
        channel.fetched = None  # in `unacked` now, and off the fetch list
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """Forget the message, unless another worker holds it now: this worker's lease
        lapsed (it was stopped or starved), the message went back and was taken again under
        the same tag, and this late ack must not erase the new holder's record."""
        channel: Channel = self.channel
        if channel.worker_id is None:
            super().ack(delivery_tag)
            return
        with channel.conn_or_acquire() as client:
            _ACK_SCRIPT(
                keys=[keys.OWNERS, self.unacked_key, self.unacked_index_key],
                args=[delivery_tag, channel.worker_id],
                client=client,
            )
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """Drop the message, or (requeue) hand it back to the head of its queue if this
        worker still holds it: a job handed back resumes before the jobs queued after it."""
        channel: Channel = self.channel
        if channel.worker_id is None:
            super().reject(delivery_tag, requeue=requeue)
            return
        if requeue:
            self.give_back(delivery_tag, holder=channel.worker_id, lapsed_only=False)
            virtual.QoS.ack(self, delivery_tag)
        else:
            self.ack(delivery_tag)

    def give_back(self, delivery_tag: str, *, holder: str, lapsed_only: bool) -> bool:
        """Put a held message back at the head of its queue; True if it went back.

        `lapsed_only`: only if `holder`'s lease is gone and it still holds the message,
        checked in the same script that moves it (a sweep). Otherwise: unless another
        worker holds it (the holder itself, handing back)."""
        channel: Channel = self.channel
        with channel.conn_or_acquire() as client:
            record: bytes | None = client.hget(self.unacked_key, delivery_tag)
            queues: list[str] = []
            payload = ""
            if record is not None:
                message, exchange, routing_key = loads(record)
                with contextlib.suppress(KeyError, TypeError):
                    message["headers"]["redelivered"] = True
                    message["properties"]["delivery_info"]["redelivered"] = True
                queues = list(channel._lookup(exchange, routing_key))
                payload = dumps(message)
            moved = _RETURN_SCRIPT(
                keys=[keys.lease(holder), keys.OWNERS, self.unacked_key,
                      self.unacked_index_key, *queues],
                args=[delivery_tag, holder, record or "", payload,
                      "lapsed" if lapsed_only else "mine"],
                client=client,
            )  # fmt: skip
        return bool(moved)

    def give_back_all(self, holder: str) -> int:
        """Put back, in one round trip, every message `holder` (this worker) still holds:
        a worker shutting down hands its jobs over at once, not one task at a time."""
        channel: Channel = self.channel
        with channel.conn_or_acquire() as client:
            owners: dict[bytes, bytes] = client.hgetall(keys.OWNERS)
            tags = [tag for tag, owner in owners.items() if owner.decode() == holder]
            if not tags:
                return 0
            records: list[bytes | None] = client.hmget(self.unacked_key, tags)
            pipe = client.pipeline(transaction=False)
            for tag, record in zip(tags, records, strict=True):
                if record is None:
                    continue
                message, exchange, routing_key = loads(record)
                with contextlib.suppress(KeyError, TypeError):
                    message["headers"]["redelivered"] = True
                    message["properties"]["delivery_info"]["redelivered"] = True
                _RETURN_SCRIPT(
                    keys=[keys.lease(holder), keys.OWNERS, self.unacked_key,
                          self.unacked_index_key, *channel._lookup(exchange, routing_key)],
                    args=[tag, holder, record, dumps(message), "mine"],
                    client=pipe,
                )  # fmt: skip
            return sum(int(moved) for moved in pipe.execute())

    def return_lapsed(self, leases: Leases) -> int:
        """Put back every message held by a worker whose lease is gone; how many went."""
        returned = 0
        for holder, tags in leases.lapsed_holdings().items():
            moved = sum(self.give_back(tag, holder=holder, lapsed_only=True) for tag in tags)
            if moved:
                log.warning("returned %d message(s) held by %s, whose lease lapsed",
                            moved, holder)  # fmt: skip
            returned += moved
        return returned

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        """kombu's sweep, run from the consumer's poll: a Redis that refuses its mutex (full
        memory) must not stop the consumer. The next sweep tries again."""
        try:
            super().restore_visible(*args, **kwargs)
        except redis.ResponseError as exc:
            log.warning("redis refused the restore sweep (%s); trying at the next one", exc)


_LIVE_QOS: weakref.WeakSet[QoS] = weakref.WeakSet()  # every channel's QoS in this process


def held_in_memory() -> set[str]:
    """Every message this process's consumers have taken and not yet acknowledged or handed
    back, as far as this process knows (not what Redis says it holds)."""
    return set().union(*(qos.held_in_memory() for qos in list(_LIVE_QOS)))


class Channel(_RedisChannel):  # type: ignore[misc]
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.global_keyprefix:
            raise ValueError("workers.transport does not support global_keyprefix")
        self.fetch_key = keys.fetching(uuid.uuid4().hex)
        options = self.connection.client.transport_options
        self.worker_id: str | None = options.get(WORKER_ID_OPTION)  # None: a producer
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
            except redis.ResponseError as exc:
                # Redis refused the fetch: BLMOVE writes, so a full Redis (noeviction)
                # answers OOM. Wait for memory instead of failing the consumer.
                self._pause("the fetch", exc)
                raise virtual.Empty() from None
            if item is None:
                raise virtual.Empty()
            self._take(item, queue)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _take(self, item: bytes, queue: str) -> None:
        """Hand one fetched entry to its consumer; whatever goes wrong, it stays somewhere:
        in `unacked`, in the fetch list (for the reclaimer), in its queue or parked."""
        try:
            payload = loads(item)
            if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
                raise ValueError("not a kombu message envelope")
        except Exception as exc:  # anything pushed onto the list by hand
            self._park(item, exc)
            raise virtual.Empty() from None
        if queue not in self.connection._callbacks:
            # No consumer any more (the channel is closing): back to the head of its queue.
            with self.conn_or_acquire() as client:
                client.eval(scripts.source("reclaim"), 2, self.fetch_key, queue, item)
            raise virtual.Empty()
        self.fetched = item
        self._queue_cycle.rotate(queue)
        try:
            self.connection._deliver(payload, queue)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            raise  # still in the fetch list; the consumer reconnects
        except redis.RedisError as exc:
            if self.fetched is None:
                raise
            self.fetched = None
            self._pause("recording a fetched message", exc)  # the reclaimer returns it
            raise virtual.Empty() from None
        except Exception as exc:
            if self.fetched is None:
                raise  # it is in `unacked`: the consumer's own failure, not the envelope's
            self.fetched = None
            self._park(item, exc)  # an envelope kombu cannot make a message of
            raise virtual.Empty() from None
        if self.fetched is not None:
            # A consumer without acks (Celery's control replies) took it as it came:
            # nothing went to `unacked`, so nothing is left to reclaim.
            self.fetched = None
            with self.conn_or_acquire() as client:
                client.lrem(self.fetch_key, 1, item)

    def _pause(self, doing: str, exc: redis.RedisError) -> None:
        log.warning("redis refused %s (%s); trying again in %g s", doing, exc, REFUSED_PAUSE_S)
        time.sleep(REFUSED_PAUSE_S)  # gevent's, under the gevent pool: other jobs go on

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
        try:
            with self.conn_or_acquire() as client:
                client.hset(keys.FETCHERS, self.fetch_key, entry)
        except redis.ResponseError as exc:  # full memory: the fetch itself will wait
            log.warning("redis refused to register a fetch list (%s)", exc)
            return
        self._registered_at = now

    def _park(self, item: bytes, exc: Exception) -> None:
        """Move an envelope that is not a message from the fetch list to the dead letters."""
        reason = f"not a message envelope: {type(exc).__name__}: {str(exc)[:200]}"
        log.error("refused a raw queue entry: %s", reason)
        from workers.context import built_context

        context = built_context()
        telemetry = NO_TELEMETRY if context is None else context.telemetry
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()
            DeadLetters(client, telemetry=telemetry).park(reason, body=item, pipe=pipe)
            pipe.lrem(self.fetch_key, 1, item)
            pipe.execute()


class Transport(_RedisTransport):  # type: ignore[misc]
    Channel = Channel


class SentinelChannel(Channel, _RedisSentinelChannel):  # type: ignore[misc]
    """The atomic fetch over kombu's sentinel channel: kombu's part finds the primary (its
    pools are redis-py's Sentinel pools, which follow a failover); ours fetches and records.
    The MRO runs ours first, then kombu's SentinelChannel, then kombu's Channel. Its
    connections look the primary up again when they reconnect (`PrimaryConnection`)."""

    connection_class = PrimaryConnection


class SentinelTransport(_RedisSentinelTransport):  # type: ignore[misc]
    Channel = SentinelChannel


class Orphans:
    """Puts back messages Redis records as held by this live worker that it no longer holds.

    After a Redis failover (or a restart from an older AOF) Redis can be behind the worker:
    a message the worker finished and acknowledged (its outcome and ack lost with the old
    primary's last writes), or one taken by a consumer whose connection broke and whose
    hand-back failed, is still in `unacked` under this worker's id. Its lease is alive, so
    no sweep returns it, and kombu's scan would wait the whole visibility timeout. A message
    seen that way on two sweeps in a row goes back to the head of its queue (holder-checked),
    and resumes from its saved progress; the outcome guard keeps one outcome if it had one.
    One per worker process; not thread-safe.
    """

    def __init__(self, client: redis.Redis, worker_id: str) -> None:
        self._redis = client
        self._worker_id = worker_id
        self._seen: set[str] = set()

    def sweep(self, qos: QoS) -> int:
        """One look; returns how many messages went back (through `qos`, any channel's)."""
        owners: dict[bytes, bytes] = self._redis.hgetall(keys.OWNERS)  # type: ignore[assignment]
        mine = {
            keys.text(tag) for tag, owner in owners.items() if keys.text(owner) == self._worker_id
        }
        orphans = mine - held_in_memory()
        again, self._seen = orphans & self._seen, orphans - self._seen
        moved = sum(qos.give_back(tag, holder=self._worker_id, lapsed_only=False) for tag in again)
        if moved:
            log.warning("put back %d message(s) recorded as held here but not held (Redis "
                        "failed over or restarted behind this worker)", moved)  # fmt: skip
        return moved


class FetchReclaimer:
    """Puts back messages stranded in fetch lists. One per worker process; not thread-safe.

    A message is stranded when it stays in a fetch list from one `sweep` to the next: a
    live channel moves what it fetched to `unacked` within milliseconds.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._reclaim = scripts.register(client, "reclaim")
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

"""The notifier: tells subscribers about outcomes, finished bulk jobs and enforcement alerts,
losing nothing, and never in a worker's way.

One step: take over what a dead notifier held (`XAUTOCLAIM`, after `claim_idle`), take the
retries that are due (leased), read new stream entries through the consumer group, turn
each into deliveries (one per matching subscription), attempt them side by side, and settle
the lot in one MULTI (acknowledge, schedule retries by the delivery schedule, park what
failed for good in the failed list). Workers only append to the streams; every HTTP request
is made here, in this process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import redis
from pydantic import ValidationError

from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.settings import Settings
from orchestrator.notify import events as ev
from orchestrator.notify.config import (
    EventType,
    Kind,
    NotifyConfig,
    Subscription,
    missing_secrets,
    secret_of,
)
from orchestrator.notify.events import Delivery, NotifyEvent
from orchestrator.notify.formats import check_secret, render
from orchestrator.notify.schedule import next_attempt_at
from orchestrator.notify.sender import Attempt, Sender
from orchestrator.store import keys
from orchestrator.store.bulk import BulkStore
from orchestrator.store.client import redis_client
from orchestrator.store.notify import FAILED_KEEP, Entry, NotifyStore, Settlement
from orchestrator.store.outages import is_redis_outage

log = logging.getLogger(__name__)


def attempt_delivery(
    subscription: Subscription | None,
    delivery: Delivery,
    sender: Sender,
    environ: Mapping[str, str],
    now: datetime,
) -> Attempt:
    """One attempt of `delivery`: the secret read now, signed now, sent under the rules."""
    if subscription is None:
        return Attempt(delivered=False, error="its subscription is no longer configured")
    try:
        secret = secret_of(subscription, environ) if subscription.secret_env else None
    except ConfigurationError as exc:
        return Attempt(delivered=False, error=str(exc))
    url = subscription.target_url
    if subscription.kind is Kind.SLACK and url is None:
        url, secret = secret, None  # the variable holds the incoming-webhook URL
    try:
        headers, body = render(subscription, delivery, secret, now)
        return sender.post(subscription.name, url or "", headers, body)
    except Exception as exc:  # one bad delivery must not stop the others (nor loop for ever)
        log.exception("delivery could not be attempted", extra={"delivery_id": delivery.id})
        return Attempt(delivered=False, error=f"internal error: {type(exc).__name__}")


class Notifier:
    def __init__(
        self,
        store: NotifyStore,
        bulks: BulkStore,
        config: NotifyConfig,
        sender: Sender,
        *,
        consumer: str,
        environ: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        batch: int | None = None,
    ) -> None:
        """`batch`: entries read per stream per step (default: 4 per request in flight), so
        that a step with slow receivers stays well inside `claim_idle`."""
        self._store = store
        self._bulks = bulks
        self._config = config
        self._options = config.notifier
        self._subs = {s.name: s for s in config.notify}
        self._pagerduty = [s.name for s in config.notify if s.kind is Kind.PAGERDUTY]
        self._sender = sender
        self._consumer = consumer
        self._environ = environ
        self._clock = clock
        self._batch = batch or 4 * self._options.concurrency
        self._pool = ThreadPoolExecutor(self._options.concurrency, thread_name_prefix="notify")
        self._next_claim_at = 0.0

    def run(self, stop: threading.Event, *, block_ms: int = 1000) -> None:
        """Step until `stop` is set (a step blocks at most `block_ms` waiting for entries)."""
        self._store.ensure_groups()
        log.info("notifier started", extra={"consumer": self._consumer,
                                            "subscriptions": len(self._subs)})  # fmt: skip
        while not stop.is_set():
            try:
                self.step(block_ms=block_ms)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The streams were lost (a Redis without persistence restarted): start anew.
                log.warning("consumer groups gone; creating them again")
                self._store.ensure_groups()
            except Exception as exc:
                if not is_redis_outage(exc):
                    raise
                # What this step attempted and did not settle is retaken (same webhook-ids).
                log.warning("redis away; waiting", extra={"error": type(exc).__name__})
                stop.wait(1.0)

    def step(self, *, block_ms: int = 1000) -> int:
        """One round; returns how many entries and retries it handled."""
        now_s = self._clock()
        entries: list[Entry] = []
        if now_s >= self._next_claim_at:
            idle_ms = int(self._options.claim_idle * 1000)
            entries += self._store.claim(self._consumer, min_idle_ms=idle_ms, count=self._batch)
            self._next_claim_at = now_s + max(1.0, self._options.claim_idle / 4)
        due = self._store.take_due(now_s=now_s, lease_s=self._options.lease, limit=self._batch)
        busy = bool(entries or due)
        entries += self._store.read(
            self._consumer, count=self._batch, block_ms=0 if busy else block_ms
        )
        work = Settlement(acks=list(entries))
        deliveries = self._expand(entries, work)
        deliveries += [Delivery.model_validate_json(body) for body in due]
        attempts = self._pool.map(
            lambda d: attempt_delivery(self._subs.get(d.subscription), d, self._sender,
                                       self._environ, datetime.now(UTC)),
            deliveries,
        )  # fmt: skip
        for delivery, attempt in zip(deliveries, attempts, strict=True):
            self._record(work, delivery, attempt, self._clock())
        self._store.settle(work)
        return len(entries) + len(due)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._sender.close()

    # --- entries to deliveries ------------------------------------------------------------

    def _expand(self, entries: list[Entry], work: Settlement) -> list[Delivery]:
        found = [e for e in (self._event(entry) for entry in entries) if e is not None]
        names = [
            ev.incident_field(sub, e.thread_id or "", e.run_id or "")
            for e in found
            if self._touches_incidents(e)
            for sub in self._pagerduty
        ]
        incidents = self._store.incidents(names)
        made: list[Delivery] = []
        for event in found:
            for delivery in ev.fan_out(self._config.notify, event):
                made.append(delivery)
                if delivery.dedup_key is not None:
                    name = ev.incident_field(delivery.subscription, event.thread_id or "",
                                             event.run_id or "")  # fmt: skip
                    incidents[name] = [*incidents.get(name, []), delivery.dedup_key]
                    work.incidents[name] = incidents[name]
            if event.type == EventType.RUN_OUTCOME and event.result in ev.RUN_ENDED:
                for sub in self._pagerduty:
                    name = ev.incident_field(sub, event.thread_id or "", event.run_id or "")
                    if name in incidents:
                        made += ev.resolutions(event, sub, incidents.pop(name))
                        work.incidents[name] = None
        return made

    def _touches_incidents(self, event: NotifyEvent) -> bool:
        return event.type in {EventType.ENFORCEMENT_ALERT, EventType.ENFORCEMENT_ESCALATED} or (
            event.type == EventType.RUN_OUTCOME and event.result in ev.RUN_ENDED
        )

    def _event(self, entry: Entry) -> NotifyEvent | None:
        """The event of a stream entry; None for entries that tell nobody anything (and
        for a malformed one, logged: it must not block the stream)."""
        if entry.fields is None:
            return None
        try:
            if entry.stream == keys.OUTCOME_STREAM:
                return ev.from_outcome(entry.entry_id, entry.fields)
            if entry.stream in {keys.EVENTS, keys.ALERTS}:
                alert = entry.stream == keys.ALERTS
                raw = entry.fields["alert" if alert else "event"]
                return ev.from_enforcement(entry.entry_id, raw, alert=alert)
            if entry.stream == keys.BULK_FINISHED:
                bulk_id = entry.fields["bulk_id"]
                record = self._bulks.get(bulk_id)
                data = record.model_dump(mode="json") if record else {"bulk_id": bulk_id}
                return ev.from_bulk(entry.entry_id, data, datetime.now(UTC))
        except (KeyError, ValueError, ValidationError) as exc:
            log.warning("unreadable stream entry skipped",
                        extra={"stream": entry.stream, "entry_id": entry.entry_id,
                               "error": type(exc).__name__})  # fmt: skip
        return None

    # --- what an attempt leads to ---------------------------------------------------------

    def _record(self, work: Settlement, delivery: Delivery, attempt: Attempt, now_s: float) -> None:
        first_at = delivery.first_at if delivery.first_at is not None else now_s
        made = delivery.model_copy(
            update={"attempts": delivery.attempts + 1, "first_at": first_at,
                    "last_error": attempt.error}
        )  # fmt: skip
        where = {"subscription": delivery.subscription, "delivery_id": delivery.id,
                 "event_type": delivery.event.type, "attempt": made.attempts}  # fmt: skip
        if attempt.delivered:
            work.delivered.append(delivery.id)
            log.info("delivered", extra=where | {"status": attempt.status})
            return
        due = None
        if attempt.retry:
            due = next_attempt_at(self._options.schedule, attempts=made.attempts,
                                  first_at=first_at, now_s=now_s,
                                  retry_after_s=attempt.retry_after_s)  # fmt: skip
        if due is not None:
            work.scheduled.append((delivery.id, due, made.model_dump_json()))
            retry_in_s = round(due - now_s, 1)
            log.info(
                "delivery failed; will retry",
                extra=where | {"error": attempt.error, "retry_in_s": retry_in_s},
            )
            return
        failed = made.model_copy(update={"failed_at": now_s})
        work.failed.append((delivery.id, failed.model_dump_json()))
        log.warning("delivery failed for good", extra=where | {"error": attempt.error})


def startup_problems(config: NotifyConfig, environ: Mapping[str, str]) -> list[str]:
    """What would make deliveries fail for sure: a secret variable unset, or a webhook
    signing secret that is not one (named, never shown)."""
    problems = missing_secrets(config, environ)
    for sub in config.notify:
        value = environ.get(sub.secret_env or "", "")
        if sub.kind is Kind.WEBHOOK and value and (why := check_secret(value)):
            problems.append(f"notify {sub.name}: secret_env: {sub.secret_env} {why}")
    return problems


def open_notifier(settings: Settings, config: NotifyConfig, environ: Mapping[str, str]) -> Notifier:
    """A notifier on the service's Redis, named after this host and process."""
    options = config.notifier
    client = redis_client(settings, max_connections=8)
    sender = Sender(
        allow_hosts=options.allow_hosts, timeout_s=options.timeout,
        max_response_bytes=options.max_response_bytes,
    )  # fmt: skip
    consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return Notifier(
        NotifyStore(client), BulkStore(client, keep_s=settings.outcome_keep_s), config, sender,
        consumer=consumer, environ=environ,
    )  # fmt: skip


def send_test(
    config: NotifyConfig, name: str, sender: Sender, environ: Mapping[str, str]
) -> Attempt:
    """Send a test event to subscription `name` now, once, whatever its filters."""
    subscription = config.subscription(name)
    if subscription is None:
        known = ", ".join(s.name for s in config.notify) or "none configured"
        raise InvalidInput("NAME", f"no [[notify]] table has this name (known: {known})", name)
    now = datetime.now(UTC)
    event = ev.probe_event(name, now)
    action = ev.Action.TRIGGER if subscription.kind is Kind.PAGERDUTY else ev.Action.SEND
    delivery = Delivery(
        id=ev.delivery_id(event.id, name, action), subscription=name, event=event,
        action=action, dedup_key=ev.dedup_key(event) if action is ev.Action.TRIGGER else None,
    )  # fmt: skip
    return attempt_delivery(subscription, delivery, sender, environ, now)


def failed_deliveries(store: NotifyStore, count: int) -> list[Delivery]:
    """The newest deliveries that failed for good."""
    return [Delivery.model_validate_json(body) for body in store.failed(count)]


def replay(store: NotifyStore, ids: Iterable[str], *, every: bool, now_s: float) -> int:
    """Give failed deliveries (those of `ids`, or all with `every`) a fresh schedule, with
    the same webhook-id; returns how many were moved back."""
    wanted = set(ids)
    moved = 0
    for body in store.failed(FAILED_KEEP):
        delivery = Delivery.model_validate_json(body)
        if not every and delivery.id not in wanted:
            continue
        fresh = delivery.model_copy(
            update={"attempts": 0, "first_at": None, "last_error": "", "failed_at": None}
        )
        moved += store.replay(body, delivery.id, fresh.model_dump_json(), now_s)
    return moved

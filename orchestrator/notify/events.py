"""What the notifier tells: events (built from the service's streams), the filters that
pick who hears each, and deliveries (one event to one subscription, until it lands).

Every id here is derived, never random, so that an event read twice (a notifier died
before it acknowledged it) becomes the same deliveries with the same `webhook-id`, and a
receiver that de-duplicates by that id processes it once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.core.models import Outcome, Result
from orchestrator.notify.config import EventType, Kind, Subscription

TEST_EVENT = "notify.test"
"""The type of the event `runctl notify test` sends (whatever the filters say)."""

RUN_ENDED = frozenset({Result.CANCELLED, Result.ALREADY_TERMINAL, Result.NOT_FOUND})
"""Outcomes after which the run is known to be over: its PagerDuty incidents resolve."""


class NotifyEvent(BaseModel):
    """One thing worth telling, with the fields the filters look at."""

    model_config = ConfigDict(frozen=True)

    id: str  # stable: the source stream and its entry id
    type: str  # an EventType value, or TEST_EVENT
    at: datetime
    data: dict[str, Any]
    result: Result | None = None
    provider: str | None = None
    bulk_id: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    rule: str | None = None


class Action(StrEnum):
    SEND = "send"  # a webhook or a Slack message
    TRIGGER = "trigger"  # PagerDuty: open (or add to) the incident of dedup_key
    RESOLVE = "resolve"  # PagerDuty: close it


class Delivery(BaseModel):
    """One event for one subscription. `id` is the `webhook-id`, the same on every attempt.

    Holds no secret: the signing secret or routing key is read at each attempt."""

    model_config = ConfigDict(frozen=True)

    id: str
    subscription: str
    event: NotifyEvent
    action: Action = Action.SEND
    dedup_key: str | None = None
    attempts: int = 0  # made so far
    first_at: float | None = None  # epoch s of the first attempt
    last_error: str = ""
    failed_at: float | None = None  # epoch s, once it failed for good


def delivery_id(event_id: str, subscription: str, action: Action) -> str:
    digest = hashlib.sha256(f"{event_id}|{subscription}|{action.value}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def matches(subscription: Subscription, event: NotifyEvent) -> bool:
    """Whether the subscription hears the event (see `Subscription` for the filters)."""
    if event.type not in subscription.hears:
        return False
    if event.type == EventType.RUN_OUTCOME:
        if subscription.results and event.result not in subscription.results:
            return False
        if subscription.providers and event.provider not in subscription.providers:
            return False
    bulk_scoped = event.type in {EventType.RUN_OUTCOME, EventType.BULK_FINISHED}
    wanted = subscription.bulk_ids
    return not (bulk_scoped and wanted and event.bulk_id not in wanted)


def dedup_key(event: NotifyEvent) -> str:
    """PagerDuty's incident key: one per run and rule."""
    return f"runctl/{event.thread_id}/{event.run_id}/{event.rule}"


def incident_field(subscription: str, thread_id: str, run_id: str) -> str:
    """Where a run's open PagerDuty incidents for one subscription are remembered."""
    return f"{subscription}|{thread_id}|{run_id}"


def fan_out(subscriptions: tuple[Subscription, ...], event: NotifyEvent) -> list[Delivery]:
    """The deliveries an event makes (PagerDuty resolves are made by `resolutions`)."""
    made = []
    for sub in subscriptions:
        if not matches(sub, event):
            continue
        if sub.kind is Kind.PAGERDUTY:
            key = dedup_key(event)
            made.append(_delivery(sub.name, event, Action.TRIGGER, key))
        else:
            made.append(_delivery(sub.name, event, Action.SEND, None))
    return made


def resolutions(event: NotifyEvent, subscription: str, open_keys: list[str]) -> list[Delivery]:
    """The resolves of a subscription's open incidents for the run an outcome ended."""
    return [_delivery(subscription, event, Action.RESOLVE, key) for key in sorted(open_keys)]


def _delivery(sub: str, event: NotifyEvent, action: Action, key: str | None) -> Delivery:
    scope = f"{event.id}|{key}" if key else event.id
    return Delivery(
        id=delivery_id(scope, sub, action), subscription=sub, event=event, action=action,
        dedup_key=key,
    )  # fmt: skip


# --- events from the service's streams (fields as text) --------------------------------


def from_outcome(entry_id: str, fields: dict[str, str]) -> NotifyEvent:
    outcome = Outcome.model_validate_json(fields["outcome"])
    provider = fields.get("provider") or None
    data = outcome.to_json_dict() | ({"provider": provider} if provider else {})
    return NotifyEvent(
        id=f"outcome:{entry_id}", type=EventType.RUN_OUTCOME.value, at=outcome.finished_at,
        data=data, result=outcome.result, provider=provider, bulk_id=outcome.bulk_id,
        thread_id=outcome.thread_id, run_id=outcome.run_id,
    )  # fmt: skip


def from_enforcement(entry_id: str, raw: str, *, alert: bool) -> NotifyEvent | None:
    """An escalation (from the events stream) or an alert; None for other actions."""
    body = json.loads(raw)
    action = body.get("action")
    if alert:
        kind, source = EventType.ENFORCEMENT_ALERT, "alert"
    elif action == "escalated":
        kind, source = EventType.ENFORCEMENT_ESCALATED, "event"
    else:
        return None
    run = body.get("run") or {}
    at = body.get("at")
    return NotifyEvent(
        id=f"{source}:{entry_id}", type=kind.value,
        at=datetime.fromtimestamp(float(at), UTC) if at is not None else datetime.now(UTC),
        data=body, thread_id=run.get("thread_id"), run_id=run.get("run_id"),
        rule=body.get("rule"),
    )  # fmt: skip


def from_bulk(entry_id: str, record: dict[str, Any], at: datetime) -> NotifyEvent:
    """A finished bulk job, `record` being its counts (`BulkRecord` as JSON)."""
    return NotifyEvent(
        id=f"bulk:{entry_id}", type=EventType.BULK_FINISHED.value, at=at, data=record,
        bulk_id=record.get("bulk_id"),
    )  # fmt: skip


def probe_event(subscription: str, at: datetime) -> NotifyEvent:
    return NotifyEvent(
        id=f"test:{subscription}:{at.timestamp()}", type=TEST_EVENT, at=at,
        data={"subscription": subscription, "message": "a test event from runctl notify test"},
        thread_id="test", run_id="test", rule="notify-test",
    )  # fmt: skip

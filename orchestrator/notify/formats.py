"""What each kind of target is sent: the request body and headers for one attempt.

- webhook: `{"type", "timestamp", "data"}` JSON, signed per Standard Webhooks (headers
  `webhook-id`, `webhook-timestamp`, `webhook-signature`), with the `standardwebhooks`
  library so that any verifier of the spec accepts it. Signed anew at each attempt (a
  verifier refuses a timestamp older than 5 minutes); the id never changes.
- slack: an incoming-webhook message, one compact line of text.
- pagerduty: an Events API v2 event: `trigger` with `dedup_key` (per run and rule), or
  `resolve` of that key.

The body carries the outcome or the alert and never a credential, except PagerDuty's
routing key, which that API takes in the body (it is read from the environment at each
attempt, never stored).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from orchestrator.notify.config import EventType, Kind, Subscription
from orchestrator.notify.events import TEST_EVENT, Action, Delivery, NotifyEvent

USER_AGENT = "runctl-notifier/1"
JSON = "application/json"


def render(
    subscription: Subscription, delivery: Delivery, secret: str | None, now: datetime
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one attempt of `delivery`. `now` is the signing time."""
    headers = {"content-type": JSON, "user-agent": USER_AGENT}
    if subscription.kind is Kind.WEBHOOK:
        body = webhook_body(delivery.event)
        return headers | sign(secret or "", delivery.id, now, body), body.encode()
    if subscription.kind is Kind.SLACK:
        return headers, _dumps({"text": summary(delivery.event)}).encode()
    return headers, _dumps(pagerduty_body(delivery, secret or "")).encode()


def webhook_body(event: NotifyEvent) -> str:
    return _dumps({"type": event.type, "timestamp": event.at.isoformat(), "data": event.data})


def sign(secret: str, msg_id: str, when: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers (`v1,` HMAC-SHA256 over `id.timestamp.body`)."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def check_secret(secret: str) -> str | None:
    """Why a webhook signing secret is unusable, or None (the value is never echoed)."""
    rule = "must be a Standard Webhooks secret: whsec_ then base64 of 24 to 64 bytes"
    encoded = secret.removeprefix("whsec_")
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        Webhook(secret)
    except (ValueError, RuntimeError, EmptyWebhookSecretError):
        return rule
    return None if 24 <= len(raw) <= 64 else rule


def pagerduty_body(delivery: Delivery, routing_key: str) -> dict[str, Any]:
    event = delivery.event
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": delivery.action.value,
        "dedup_key": delivery.dedup_key,
    }
    if delivery.action is Action.TRIGGER:
        severity = {
            EventType.ENFORCEMENT_ALERT.value: "critical",
            EventType.ENFORCEMENT_ESCALATED.value: "warning",
        }.get(event.type, "info")
        body["payload"] = {
            "summary": summary(event)[:1024],
            "source": "runctl",
            "severity": severity,
            "timestamp": event.at.isoformat(),
            "component": f"{event.thread_id}/{event.run_id}",
            "group": event.rule,
            "custom_details": event.data,
        }
    return body


def summary(event: NotifyEvent) -> str:
    """One line a person can act on."""
    data = event.data
    run = f"{event.thread_id}/{event.run_id}"
    if event.type == EventType.RUN_OUTCOME:
        result = event.result.value if event.result else "?"
        final = f" (final status {data['final_status']})" if data.get("final_status") else ""
        reason = f"; reason: {data['reason']}" if data.get("reason") else ""
        bulk = f"; bulk {event.bulk_id}" if event.bulk_id else ""
        return f"runctl: run {run} {result}{final}{reason}{bulk}"
    if event.type == EventType.BULK_FINISHED:
        counts = sorted((data.get("results") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        parts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts) or "no jobs"
        return f"runctl: bulk job {event.bulk_id} {data.get('status', 'finished')}: {parts}"
    if event.type == EventType.ENFORCEMENT_ESCALATED:
        return (
            f"runctl: cancel of run {run} re-issued (rule {event.rule}, "
            f"attempt {data.get('attempt')})"
        )
    if event.type == EventType.ENFORCEMENT_ALERT:
        return (
            f"runctl ALERT: run {run} still cancelling after {data.get('reissues')} "
            f"re-issues (rule {event.rule})"
        )
    if event.type == TEST_EVENT:
        return f"runctl: test event for {data.get('subscription')}"
    return f"runctl: {event.type}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)

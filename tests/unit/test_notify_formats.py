"""Signing (checked with the standardwebhooks library's own verifier), the body of each
kind of target, the filters, and the ids that make redelivery de-duplicable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from orchestrator.core.models import Outcome, Result
from orchestrator.notify import events as ev
from orchestrator.notify.config import EventType, Subscription, load_notify
from orchestrator.notify.formats import check_secret, render, summary

SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes length").decode()
NOW = datetime.now(UTC)


def outcome_event(result: Result = Result.TIMED_OUT, bulk_id: str | None = None) -> ev.NotifyEvent:
    outcome = Outcome(
        job_id="job_1", thread_id="thread_1", run_id="run_1", result=result,
        final_status="cancelling", requested_at=NOW, finished_at=NOW, duration_s=1.5,
        reason="stuck", bulk_id=bulk_id,
    )  # fmt: skip
    fields = {"outcome": outcome.model_dump_json(), "provider": "assistants"}
    return ev.from_outcome("1-0", fields)


def alert_event() -> ev.NotifyEvent:
    body = {"at": NOW.timestamp(), "action": "alerted", "rule": "support-bots", "reissues": 2,
            "run": {"thread_id": "thread_1", "run_id": "run_1"}}  # fmt: skip
    made = ev.from_enforcement("2-0", json.dumps(body), alert=True)
    assert made is not None
    return made


def sub(**fields: object) -> Subscription:
    base: dict[str, object] = {"name": "s", "kind": "webhook", "url": "https://a.example/",
                               "secret_env": "S"}  # fmt: skip
    return Subscription.model_validate(base | fields)


def test_a_webhook_is_signed_so_the_standard_verifier_accepts_it() -> None:
    event = outcome_event()
    (delivery,) = ev.fan_out((sub(),), event)
    headers, body = render(sub(), delivery, SECRET, NOW)
    assert headers["webhook-id"] == delivery.id
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["type"] == "run.outcome"
    assert payload["data"]["result"] == "timed_out"
    assert payload["data"]["provider"] == "assistants"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"timed_out", b"cancelled"), headers)


def test_the_body_carries_no_secret() -> None:
    (delivery,) = ev.fan_out((sub(),), outcome_event())
    _, body = render(sub(), delivery, SECRET, NOW)
    assert SECRET.encode() not in body
    assert SECRET.removeprefix("whsec_").encode() not in body


def test_a_bad_signing_secret_is_named_not_shown() -> None:
    assert check_secret(SECRET) is None
    why = check_secret("not base64 at all!")
    assert why is not None
    assert "not base64" not in why


def test_the_webhook_id_is_the_same_whenever_the_event_is_read_again() -> None:
    first = ev.fan_out((sub(), sub(name="t")), outcome_event())
    again = ev.fan_out((sub(), sub(name="t")), outcome_event())
    assert [d.id for d in first] == [d.id for d in again]
    assert len({d.id for d in first}) == 2  # one per subscription


def test_filters() -> None:
    timed_out, cancelled = outcome_event(), outcome_event(Result.CANCELLED)
    only_failures = sub(results=["timed_out", "error"])
    assert ev.matches(only_failures, timed_out)
    assert not ev.matches(only_failures, cancelled)
    assert ev.matches(only_failures, alert_event())  # results narrow outcomes only
    assert not ev.matches(sub(events=["enforcement.alert"]), timed_out)
    assert not ev.matches(sub(providers=["assistants"]), outcome_event().model_copy(
        update={"provider": "other"}))  # fmt: skip
    in_bulk = sub(bulk_ids=["bulk_a"])
    assert ev.matches(in_bulk, outcome_event(bulk_id="bulk_a"))
    assert not ev.matches(in_bulk, outcome_event(bulk_id="bulk_b"))
    assert not ev.matches(in_bulk, outcome_event())
    finished = ev.from_bulk("3-0", {"bulk_id": "bulk_b", "results": {}}, NOW)
    assert not ev.matches(in_bulk, finished)


def test_escalations_come_from_the_events_stream_other_actions_do_not() -> None:
    escalated = {"action": "escalated", "rule": "r", "attempt": 1, "at": 1.0,
                 "run": {"thread_id": "t", "run_id": "r"}}  # fmt: skip
    made = ev.from_enforcement("4-0", json.dumps(escalated), alert=False)
    assert made is not None
    assert made.type == EventType.ENFORCEMENT_ESCALATED
    assert ev.from_enforcement("5-0", json.dumps({"action": "cancelled"}), alert=False) is None


def test_slack_gets_one_compact_line() -> None:
    config = load_notify('[[notify]]\nname = "c"\nkind = "slack"\nurl = "https://s.example/x"\n')
    (delivery,) = ev.fan_out(config.notify, outcome_event())
    headers, body = render(config.notify[0], delivery, None, NOW)
    assert json.loads(body) == {
        "text": "runctl: run thread_1/run_1 timed_out (final status cancelling); reason: stuck"
    }
    assert "webhook-signature" not in headers
    record = {"bulk_id": "bulk_1", "status": "running",
              "results": {"cancelled": 9812, "timed_out": 3}}  # fmt: skip
    assert summary(ev.from_bulk("6-0", record, NOW)) == (
        "runctl: bulk job bulk_1 running: 9,812 cancelled, 3 timed out"
    )


def test_pagerduty_triggers_per_run_and_rule_then_resolves() -> None:
    config = load_notify('[[notify]]\nname = "p"\nkind = "pagerduty"\nsecret_env = "PD"\n')
    pager = config.notify[0]
    (trigger,) = ev.fan_out(config.notify, alert_event())
    assert trigger.action is ev.Action.TRIGGER
    assert trigger.dedup_key == "runctl/thread_1/run_1/support-bots"
    _, body = render(pager, trigger, "routing-key-1", NOW)
    sent = json.loads(body)
    assert sent["event_action"] == "trigger"
    assert sent["routing_key"] == "routing-key-1"
    assert sent["payload"]["severity"] == "critical"
    assert ev.fan_out(config.notify, outcome_event(Result.CANCELLED)) == []  # outcomes: no
    (resolve,) = ev.resolutions(outcome_event(Result.CANCELLED), "p", [trigger.dedup_key or ""])
    _, body = render(pager, resolve, "routing-key-1", NOW)
    assert json.loads(body) == {"routing_key": "routing-key-1", "event_action": "resolve",
                                "dedup_key": "runctl/thread_1/run_1/support-bots"}  # fmt: skip
    assert resolve.id != trigger.id

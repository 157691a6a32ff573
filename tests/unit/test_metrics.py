"""The worker's metrics and the fleet's reading of a queued message, without Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from orchestrator.core.models import CancelJob, Outcome, Result
from orchestrator.metrics import PrometheusTelemetry, status_class
from orchestrator.store.fleet import _age_s, _by_status, _requested_at
from workers.envelope import MessageFormat


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (202, "2xx"), (404, "4xx"), (429, "4xx"), (503, "5xx"), (None, "error")],
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_published_outcome_counts_once_with_its_time_to_outcome() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry, providers=["openai"])
    requested = datetime(2026, 1, 1, tzinfo=UTC)
    outcome = Outcome(job_id="job_1", provider="openai", thread_id="thread_1", run_id="run_1",
                      result=Result.CANCELLED, requested_at=requested,
                      finished_at=requested + timedelta(seconds=3), duration_s=3.0)  # fmt: skip
    telemetry.outcome_published(outcome, published_at_s=requested.timestamp() + 3.5)
    labels = {"provider": "openai", "result": "cancelled"}
    assert value(registry, "runctl_outcomes_total", **labels) == 1
    assert value(registry, "runctl_time_to_outcome_seconds_sum", **labels) == 3.5
    assert value(registry, "runctl_time_to_outcome_seconds_bucket", le="2.0", **labels) == 0
    assert value(registry, "runctl_time_to_outcome_seconds_bucket", le="5.0", **labels) == 1
    # Every result starts at zero, so a rate is defined before the first of its kind.
    assert registry.get_sample_value("runctl_outcomes_total",
                                     {"provider": "openai", "result": "error"}) == 0  # fmt: skip


def test_requests_by_status_class_and_429s() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry)
    telemetry.provider_request("azure", "POST", 429, 0.2)
    telemetry.provider_request("azure", "GET", 200, 0.05)
    telemetry.provider_request("azure", "GET", None, 5.0)
    get = {"provider": "azure", "method": "GET"}
    assert value(registry, "runctl_provider_requests_total", status_class="2xx", **get) == 1
    assert value(registry, "runctl_provider_requests_total", status_class="error", **get) == 1
    assert value(registry, "runctl_provider_throttled_total", provider="azure") == 1
    assert value(registry, "runctl_provider_request_duration_seconds_count", **get) == 2


def test_rate_limit_waits_add_their_seconds() -> None:
    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry)
    telemetry.rate_limit_wait("openai", 0.25)
    telemetry.rate_limit_wait("openai", 0.5)
    telemetry.rate_limit_pause("openai")
    assert value(registry, "runctl_rate_limit_waits_total", provider="openai") == 2
    assert value(registry, "runctl_rate_limit_wait_seconds_total", provider="openai") == 0.75
    assert value(registry, "runctl_rate_limit_pauses_total", provider="openai") == 1


def test_the_oldest_age_is_read_from_the_queued_message() -> None:
    requested = datetime(2026, 1, 1, tzinfo=UTC)
    message = MessageFormat("runctl").encode(CancelJob(run_id="r", requested_at=requested))
    assert _age_s(message.encode(), requested.timestamp() + 42.5) == 42.5
    assert _age_s(None, 0.0) is None
    assert _age_s(b"not a kombu envelope", 0.0) is None


def test_bulk_jobs_are_counted_by_status() -> None:
    records: list[list[bytes | None]] = [
        [b"running", None, b"5", b"10"],  # outcomes still coming
        [b"running", b"1", b"10", b"10"],  # finished
        [b"running", None, b"10", b"10"],  # every outcome in
        [b"aborted", None, b"3", b"10"],
        [b"enqueueing", None, None, b"500"],
        [None, None, None, None],  # its record expired
    ]
    assert _by_status(records) == {"enqueueing": 1, "running": 1, "finished": 2, "aborted": 1}


def test_the_requested_at_of_a_queued_job_is_read_from_its_envelope() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    raw = MessageFormat("runctl").encode(CancelJob(run_id="r", requested_at=at)).encode()
    assert _requested_at(raw) == at.timestamp()
    assert _requested_at(b"not json") is None
    assert _requested_at(b'{"body": "bm90IGpzb24="}') is None
    assert _requested_at(None) is None

"""The fleet's oldest queued age is read from the job inside the tail message's envelope."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.core.models import CancelJob
from orchestrator.store.fleet import _requested_at
from workers.envelope import MessageFormat


def test_the_requested_at_of_a_queued_job_is_read_from_its_envelope() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = CancelJob(thread_id="thread_1", run_id="run_1", requested_at=at)
    raw = MessageFormat("runctl").encode(job).encode()
    assert _requested_at(raw) == at.timestamp()


def test_a_message_that_is_not_an_envelope_has_no_age() -> None:
    assert _requested_at(b"not json") is None
    assert _requested_at(b'{"body": "bm90IGpzb24="}') is None
    assert _requested_at(None) is None

"""Progress while a bulk job's targets are queued: after each batch, never per run."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from orchestrator.cli.bulk import _QueueingBar
from orchestrator.core.models import CancelJob
from orchestrator.service.bulk import enqueue
from orchestrator.service.targets import Problem, Target
from orchestrator.store.admission import Submitted
from orchestrator.store.bulk import BulkRecord, BulkStatus


@dataclass
class CountingStore:
    """The bulk record's counters, in memory."""

    counts: dict[str, int] = field(default_factory=dict)

    def status(self, bulk_id: str) -> BulkStatus:
        return BulkStatus.ENQUEUEING

    def first_sightings(self, bulk_id: str, targets: Sequence[Target]) -> list[bool]:
        return [True for _ in targets]

    def add(self, bulk_id: str, *, elsewhere: Sequence[Any] = (), **counts: int) -> None:
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value

    def enqueued(self, bulk_id: str, *, failure: str = "") -> None:
        self.failure = failure


def test_progress_is_reported_after_each_batch() -> None:
    store = CountingStore()
    queued_at_each_batch: list[int] = []
    targets: list[Target | Problem] = [Target(f"thread_{i}", f"run_{i}") for i in range(5)]
    targets.append(Problem("line 7", "thread_id", "must not be empty"))

    enqueue(
        "bulk_1",
        targets,
        store=store,  # type: ignore[arg-type]
        make_job=lambda t: CancelJob(thread_id=t.thread_id, run_id=t.run_id),
        submit_many=lambda jobs: [Submitted(j.job_id, False) for j in jobs],
        on_problem=lambda _: None,
        on_batch=lambda: queued_at_each_batch.append(store.counts["queued"]),
        batch_size=2,
    )

    assert queued_at_each_batch == [2, 4, 5]
    assert store.counts["invalid"] == 1


def test_a_failed_send_stops_the_reading_and_is_recorded() -> None:
    store = CountingStore()
    sent: list[int] = []

    def submit_many(jobs: Sequence[CancelJob]) -> list[Submitted]:
        if sent:
            raise ConnectionError("redis went away")
        sent.append(len(jobs))
        return [Submitted(j.job_id, False) for j in jobs]

    read: list[int] = []

    def targets() -> Iterator[Target | Problem]:
        for i in range(10):
            read.append(i)
            yield Target(f"thread_{i}", f"run_{i}")

    with pytest.raises(ConnectionError):
        enqueue(
            "bulk_1", targets(), store=store,  # type: ignore[arg-type]
            make_job=lambda t: CancelJob(thread_id=t.thread_id, run_id=t.run_id),
            submit_many=submit_many, on_problem=lambda _: None, batch_size=2,
        )  # fmt: skip
    assert sent == [2]
    assert store.failure == "enqueueing stopped: ConnectionError"
    assert len(read) <= 6  # at most the batch being read while the failed one was sent


def test_the_queueing_bar_shows_what_was_read_and_queued() -> None:
    record = BulkRecord(
        bulk_id="bulk_1", status=BulkStatus.ENQUEUEING, created_at=datetime.now(UTC),
        seen=3, invalid=1, queued=2, done=1,
    )  # fmt: skip
    producer: Any = SimpleNamespace(bulks=SimpleNamespace(get=lambda _: record))
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with _QueueingBar(producer, json_output=False, console=console) as bar:
        bar.start("bulk_1")
        bar.advance()
        bar._progress.refresh()
    assert "queueing: 4 read, 2 queued, 1 done" in screen.getvalue()

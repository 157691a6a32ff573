"""Reconciling jobs accepted against outcomes published: the exactly-once promise, checked.

Every admitted job is recorded as accepted (`jobs._ADMIT`, atomically with its in-flight
marker); every outcome lands once in the stream and in its bulk's report list. An audit
lists the jobs with no outcome (in flight, or lost) and the jobs with more than one.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator.store import keys
from orchestrator.store.keys import text


@dataclass
class AuditReport:
    accepted: int = 0
    published: int = 0
    in_flight: list[str] = field(default_factory=list)  # started, no outcome yet
    missing: list[str] = field(default_factory=list)  # neither an outcome nor progress
    duplicated: dict[str, int] = field(default_factory=dict)  # job id -> outcomes seen

    @property
    def clean(self) -> bool:
        return not self.missing and not self.duplicated


def audit(client: redis.Redis, *, bulk_id: str | None = None, chunk: int = 1000) -> AuditReport:
    """Check every accepted job (of one bulk job, with `bulk_id`): one outcome each."""
    accepted_key = keys.bulk_jobs(bulk_id) if bulk_id else keys.ACCEPTED
    report = AuditReport()
    for job_ids in _chunks(client, accepted_key, chunk):
        report.accepted += len(job_ids)
        pipe = client.pipeline(transaction=False)
        pipe.mget([keys.outcome(j) for j in job_ids])
        for job_id in job_ids:
            pipe.exists(keys.job_state(job_id))
        outcomes, *started = pipe.execute()
        for job_id, outcome, running in zip(job_ids, outcomes, started, strict=True):
            if outcome is not None:
                report.published += 1
            elif running:
                report.in_flight.append(job_id)
            else:
                report.missing.append(job_id)
    seen = _published_counts(client, bulk_id, chunk)
    report.duplicated = {job_id: n for job_id, n in seen.items() if n > 1}
    return report


def _chunks(client: redis.Redis, key: str, chunk: int) -> Any:
    start = 0
    while True:
        raw: Any = client.zrange(key, start, start + chunk - 1)
        if not raw:
            return
        yield [text(j) for j in raw]
        start += chunk


def _published_counts(client: redis.Redis, bulk_id: str | None, chunk: int) -> Counter[str]:
    """How many times each job appears among published outcomes (stream, or bulk report)."""
    counts: Counter[str] = Counter()
    if bulk_id:
        start = 0
        while rows := list(client.lrange(keys.bulk_outcomes(bulk_id), start, start + chunk - 1)):
            counts.update(json.loads(row)["job_id"] for row in rows)
            start += chunk
        return counts
    last = "-"
    while True:
        entries: Any = client.xrange(keys.OUTCOME_STREAM, min=last, count=chunk)
        if last != "-":
            entries = entries[1:]  # the first is the last of the previous chunk
        if not entries:
            return counts
        counts.update(text(fields[b"job_id"]) for _, fields in entries)
        last = text(entries[-1][0])

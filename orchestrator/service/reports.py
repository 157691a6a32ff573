"""A bulk job's report, one row per run: as CSV lines (with a header) or as JSON lines.

Rows stream from Redis a chunk at a time, so a 100,000-run report is never held whole; the
CLI (`runctl bulk report`) and the API (`GET /v1/bulk/{id}/report`) write the same lines.
A run another job was already cancelling has the result `in_flight_elsewhere` and that
job's id (in JSON: `{"in_flight_elsewhere": {...}}`); `runctl job` follows that job.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence

from orchestrator.store.bulk import BulkStore

IN_FLIGHT_ELSEWHERE = "in_flight_elsewhere"
# `provider` (the connection) comes last: scripts reading the older columns still work.
COLUMNS = ["job_id", "thread_id", "run_id", "result", "final_status", "cancel_attempts",
           "polls", "duration_s", "error_status", "error_message", "provider"]  # fmt: skip


def json_lines(store: BulkStore, bulk_id: str) -> Iterator[str]:
    """One JSON object per line (each ending in a newline)."""
    for outcome in store.outcomes(bulk_id):
        yield outcome.model_dump_json() + "\n"
    for row in store.elsewhere(bulk_id):
        yield json.dumps({IN_FLIGHT_ELSEWHERE: row.model_dump()}) + "\n"


def csv_lines(store: BulkStore, bulk_id: str) -> Iterator[str]:
    """A header, then one CSV row per run (each ending in CRLF, as the csv module writes)."""
    yield _csv(COLUMNS)
    for outcome in store.outcomes(bulk_id):
        error = outcome.error
        yield _csv([outcome.job_id, outcome.thread_id or "", outcome.run_id,
                    outcome.result.value, outcome.final_status or "", outcome.cancel_attempts,
                    outcome.polls, outcome.duration_s, error.http_status if error else "",
                    error.message if error else "", outcome.provider])  # fmt: skip
    for row in store.elsewhere(bulk_id):
        note = f"already being cancelled by job {row.job_id}"
        yield _csv([row.job_id, row.thread_id or "", row.run_id, IN_FLIGHT_ELSEWHERE,
                    "", "", "", "", "", note, row.provider])  # fmt: skip


def _csv(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()

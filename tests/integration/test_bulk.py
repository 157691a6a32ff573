"""Bulk jobs end to end: a real worker, Redis and the simulator over HTTP.

Given runs on the simulator and a file or threads naming them, when a bulk job runs,
then its record adds up, each run is cancelled once, and the simulator saw it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.core.models import DEFAULT_CONNECTION, Result
from orchestrator.service.targets import Target
from orchestrator.store import keys
from orchestrator.store.bulk import BulkRecord, BulkStatus
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    wait_for,
    wait_for_bulk,
)
from workers.producer import Producer

pytestmark = pytest.mark.integration


def runctl(
    deployment: Deployment, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=deployment.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def last_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def test_a_bulk_job_from_a_file_counts_every_line(
    sim: Sim, deployment: Deployment, worker: Worker, tmp_path: Path
) -> None:
    stuck = sim.seed(20, status="in_progress")
    done = sim.seed(5, status="completed")
    lines = [json.dumps({"thread_id": t, "run_id": r, "reason": "incident 42"}) for t, r in stuck]
    lines += [json.dumps({"thread_id": t, "run_id": r}) for t, r in done]
    lines.insert(3, "not json at all")  # line 4
    lines.insert(7, json.dumps({"thread_id": "../etc", "run_id": "run_1"}))  # line 8
    lines.append(lines[0])  # the same run again: cancelled once
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    finished = runctl(deployment, "bulk-cancel", str(path), "--wait", "--json")

    assert finished.returncode == 0, finished.stderr
    problems = [json.loads(x)["problem"] for x in finished.stdout.splitlines() if '"problem"' in x]
    assert [(p["where"], p["field"]) for p in problems] == [
        ("line 4", "line"),
        ("line 8", "thread_id"),
    ]
    record = BulkRecord.model_validate(last_json(finished.stdout))
    assert record.status is BulkStatus.RUNNING
    assert (record.queued, record.repeated, record.invalid, record.done) == (25, 1, 2, 25)
    assert record.results == {Result.CANCELLED: 20, Result.ALREADY_TERMINAL: 5}
    for _, run_id in stuck:
        assert len(sim.requests(run_id=run_id, route="cancel_run")) == 1
    audited = runctl(deployment, "audit", "--bulk", record.bulk_id, "--json")
    assert audited.returncode == 0, audited.stdout
    assert last_json(audited.stdout)["accepted"] == 25


def test_a_csv_file_from_stdin_and_its_report(
    sim: Sim, deployment: Deployment, worker: Worker, redis_client: redis.Redis
) -> None:
    runs = sim.seed(6, status="in_progress")
    # One run another job holds: its in-flight marker names that job.
    busy_thread, busy_run = sim.seed_one(status="in_progress")
    marker = keys.inflight(DEFAULT_CONNECTION, busy_thread, busy_run)
    redis_client.set(marker, "job_held_elsewhere", ex=300)
    listed = [*runs, (busy_thread, busy_run)]
    csv_text = "thread_id,run_id,reason\n" + "".join(f"{t},{r},csv\n" for t, r in listed)
    try:
        finished = runctl(deployment, "bulk-cancel", "-", "--wait", "--json", stdin=csv_text)
    finally:
        redis_client.delete(marker)
    assert finished.returncode == 0, finished.stderr
    record = BulkRecord.model_validate(last_json(finished.stdout))
    assert (record.seen, record.queued, record.in_flight_elsewhere) == (7, 6, 1)

    report = runctl(deployment, "bulk", "report", record.bulk_id, "--csv")
    rows = [row.split(",") for row in report.stdout.splitlines()]
    assert ",".join(rows[0]).startswith("job_id,thread_id,run_id,result")
    by_run = {row[2]: row for row in rows[1:]}
    assert sorted(by_run) == sorted(r for _, r in listed)  # every run listed has its row
    assert all(by_run[r][3] == "cancelled" for _, r in runs)
    busy_row = by_run[busy_run]
    assert (busy_row[0], busy_row[3]) == ("job_held_elsewhere", "in_flight_elsewhere")
    assert busy_row[9] == "already being cancelled by job job_held_elsewhere"
    assert busy_row[10] == "openai"  # the connection, last
    as_json = runctl(deployment, "bulk", "report", record.bulk_id, "--json")
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(lines) == 7
    assert {"in_flight_elsewhere": {"provider": "openai", "thread_id": busy_thread,
                                    "run_id": busy_run, "job_id": "job_held_elsewhere"}
            } in lines  # fmt: skip


def test_discovery_lists_every_page_and_keeps_matching_runs(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    (thread_id, _), *_ = stuck = sim.seed(130, status="in_progress", runs_per_thread=1000)
    sim.seed(4, status="completed", thread_id=thread_id)
    sim.seed(3, status="requires_action", thread_id=thread_id)
    finished = runctl(
        deployment, "bulk-cancel", "--thread", thread_id, "--status", "in_progress",
        "--wait", "--json",
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    record = BulkRecord.model_validate(last_json(finished.stdout))
    assert record.queued == len(stuck) == 130
    assert record.results == {Result.CANCELLED: 130}
    lists = sim.requests(thread_id=thread_id, route="list_runs")
    assert len(lists) == 2  # 137 runs at 100 a page


def test_a_dry_run_sends_no_cancel(sim: Sim, deployment: Deployment, worker: Worker) -> None:
    (thread_id, _), *_ = sim.seed(12, status="in_progress", runs_per_thread=1000)
    before = sim.stats()["cancels_received"]
    listed = runctl(deployment, "bulk-cancel", "--thread", thread_id, "--dry-run", "--json")
    assert listed.returncode == 0, listed.stderr
    summary = last_json(listed.stdout)
    assert summary == {"dry_run": True, "runs": 12, "problems": 0}
    assert listed.stdout.count('"would_cancel"') == 12
    assert sim.stats()["cancels_received"] == before


def test_abort_leaves_the_jobs_not_yet_done_skipped(
    sim: Sim, deployment: Deployment, worker: Worker
) -> None:
    runs = sim.seed(40, status="in_progress")
    producer = Producer(deployment.settings())
    # 2 requests a second for this bulk job: most jobs are still waiting for a slot.
    bulk_id = producer.bulk_cancel(
        (Target(t, r) for t, r in runs), on_problem=print, rate_limit_rps=2.0
    )
    wait_for(
        lambda: any(sim.requests(run_id=r, route="cancel_run") for _, r in runs[:3]),
        timeout_s=30,
        what="a first cancel",
    )
    producer.bulks.abort(bulk_id)
    record = wait_for_bulk(producer, bulk_id, timeout_s=60)
    producer.close()
    assert record.status is BulkStatus.ABORTED
    assert record.done == record.queued == 40
    assert record.results.get(Result.SKIPPED, 0) >= 20
    assert sum(record.results.values()) == 40
    outcomes = list(Producer(deployment.settings()).bulks.outcomes(bulk_id))
    assert len(outcomes) == 40
    for outcome in outcomes:  # nothing was sent for a job beyond what its outcome says
        sent = sim.requests(run_id=outcome.run_id, route="cancel_run")
        assert len(sent) == outcome.cancel_attempts, outcome
    never_sent = [o for o in outcomes if o.result is Result.SKIPPED and o.cancel_attempts == 0]
    assert len(never_sent) >= 20
    audited = runctl(deployment, "audit", "--bulk", bulk_id, "--json")
    assert last_json(audited.stdout) | {"clean": True} == last_json(audited.stdout)

"""Timeout enforcement against the simulator, with real workers and a real beat.

Given runs tracked by the enforcer and a policy file, when passes run, then runs over
budget are cancelled (once), runs within budget and `report` rules send no cancel, a dry
run changes nothing, and a run stuck in `cancelling` escalates, then alerts exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.store import keys
from tests.integration.harness import (
    Deployment,
    Sim,
    Worker,
    fresh_database,
    outcome_of,
    start_worker,
    wait_for,
)
from workers.producer import Producer

pytestmark = pytest.mark.integration

POLICIES = """
[[rule]]
name = "watch-only"
action = "report"
match = { assistant_id = "asst_report" }
max_age = { in_progress = "60s" }

[[rule]]
name = "budget"
max_age = { in_progress = "60s", queued = "60s" }
"""


@pytest.fixture(scope="module")
def enforcing(
    redis_url: str, sim: Sim, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, Worker]]:
    where = tmp_path_factory.mktemp("enforcing")
    policies = where / "runctl.toml"
    policies.write_text(POLICIES)
    deployment = Deployment(
        redis_url=fresh_database(redis_url, 10),  # its own tracked set, events and alerts
        queue=f"runctl-enforce-{uuid.uuid4().hex[:6]}",
        api_key=sim.api_key,
        base_url=sim.base_url,
        overrides={
            "RUNCTL_POLICIES_FILE": str(policies),
            "RUNCTL_DEFAULT_DEADLINE_S": "3",
            "RUNCTL_ENFORCE_REISSUE_MAX": "1",
            "RUNCTL_ENFORCE_REISSUE_BACKOFF_S": "0",
            "RUNCTL_ENFORCE_INTERVAL_S": "1",
        },
    )
    worker = start_worker(deployment, where)
    yield deployment, worker
    worker.stop()


def runctl(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=deployment.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def enforce_once(deployment: Deployment, *flags: str) -> list[dict[str, Any]]:
    done = runctl(deployment, "enforce", "--once", "--json", *flags)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_over_budget_is_cancelled_within_budget_and_report_rules_are_not(
    sim: Sim, enforcing: tuple[Deployment, Worker]
) -> None:
    deployment, _ = enforcing
    over = sim.seed_one(status="in_progress", started_ago_s=120)
    within = sim.seed_one(status="in_progress", started_ago_s=5)
    reported = sim.seed_one(status="in_progress", started_ago_s=120, assistant_id="asst_report")
    producer = Producer(deployment.settings())
    for thread_id, run_id in (over, within, reported):
        assert producer.track(thread_id, run_id)
    before = sim.stats()["cancels_received"]

    dry = enforce_once(deployment, "--dry-run")
    assert {(e.get("action"), e.get("run", {}).get("run_id")) for e in dry[:-1]} == {
        ("cancelled", over[1]),
        ("reported", reported[1]),
    }
    assert all(e["dry_run"] for e in dry)
    assert sim.stats()["cancels_received"] == before  # a dry run sends no cancel

    done = enforce_once(deployment)
    cancelled = next(e for e in done if e.get("action") == "cancelled")
    assert cancelled["rule"] == "budget"
    assert cancelled["run"]["run_id"] == over[1]
    assert outcome_of(producer, cancelled["job_id"]).result is Result.CANCELLED
    assert sim.requests(run_id=within[1], route="cancel_run") == []
    assert sim.requests(run_id=reported[1], route="cancel_run") == []

    again = enforce_once(deployment)  # the report is made once; the cancelled run is gone
    assert [e for e in again if "action" in e] == []
    listed = runctl(deployment, "events", "--json")
    actions = [json.loads(line)["action"] for line in listed.stdout.splitlines()]
    assert actions.count("cancelled") >= 1
    assert actions.count("reported") >= 1
    producer.close()


def test_a_run_stuck_in_cancelling_escalates_then_alerts_once(
    sim: Sim, enforcing: tuple[Deployment, Worker]
) -> None:
    deployment, _ = enforcing
    stuck = sim.seed_one(status="in_progress", started_ago_s=120, behavior="stuck_cancelling")
    producer = Producer(deployment.settings())
    producer.track(*stuck)
    first = next(e for e in enforce_once(deployment) if e.get("action") == "cancelled")
    assert outcome_of(producer, first["job_id"]).result is Result.TIMED_OUT

    escalated: list[dict[str, Any]] = []
    alerted: list[dict[str, Any]] = []

    def until_alerted() -> bool:
        events = [e for e in enforce_once(deployment) if "action" in e]
        escalated.extend(e for e in events if e["action"] == "escalated")
        alerted.extend(e for e in events if e["action"] == "alerted")
        for event in events:
            if event["action"] == "escalated":
                outcome_of(producer, event["job_id"])
        return bool(alerted)

    wait_for(until_alerted, timeout_s=60, interval_s=0.1, what="an alert")
    assert len(escalated) == 1
    assert [a["run"]["run_id"] for a in alerted] == [stuck[1]]
    for _ in range(2):  # later passes do not alert again
        assert [e for e in enforce_once(deployment) if e.get("action") == "alerted"] == []
    client = redis.Redis.from_url(deployment.redis_url)
    alerts: Any = client.xrange(keys.ALERTS)
    assert [json.loads(f[b"alert"])["run"]["run_id"] for _, f in alerts].count(stuck[1]) == 1
    assert len(sim.requests(run_id=stuck[1], route="cancel_run")) == 2
    client.close()
    producer.close()


def test_two_beats_at_once_do_not_double_cancel(
    sim: Sim, enforcing: tuple[Deployment, Worker], tmp_path: Path
) -> None:
    deployment, worker = enforcing
    runs = sim.seed(5, status="in_progress", started_ago_s=120)
    producer = Producer(deployment.settings())
    beats = [start_beat(deployment, tmp_path / f"beat{n}.log") for n in range(2)]
    try:
        for run in runs:
            producer.track(*run)

        def all_cancelled() -> bool:
            return all(sim.requests(run_id=r, route="cancel_run") for _, r in runs)

        wait_for(all_cancelled, timeout_s=60, what="every run cancelled")
        # Let both beats send a few more passes (the worker logs each one it runs): none
        # may cancel again.
        passes = worker.log().count("enforcement pass")
        wait_for(
            lambda: worker.log().count("enforcement pass") >= passes + 4,
            timeout_s=60,
            what="four more enforcement passes",
        )
    finally:
        for beat in beats:
            beat.terminate()
            beat.wait(timeout=20)
    listed = runctl(deployment, "events", "--json", "--count", "1000")
    cancelled = [
        e["run"]["run_id"] for e in map(json.loads, listed.stdout.splitlines())
        if e["action"] == "cancelled"
    ]  # fmt: skip
    for _, run_id in runs:
        assert len(sim.requests(run_id=run_id, route="cancel_run")) == 1
        assert cancelled.count(run_id) == 1
    producer.close()


def test_a_thousand_tracked_runs_take_no_round_trip_each_for_bookkeeping(
    sim: Sim, enforcing: tuple[Deployment, Worker]
) -> None:
    deployment, _ = enforcing
    runs = sim.seed(1000, status="in_progress", started_ago_s=1)
    producer = Producer(deployment.settings())
    client = producer.redis
    pipe = client.pipeline(transaction=False)
    for thread_id, run_id in runs:
        pipe.zadd(keys.TRACKED, {f"{thread_id}:{run_id}": 0})
    pipe.execute()
    before = _calls(client)
    report = enforce_once(deployment)[-1]
    after = _calls(client)
    assert report["looked_at"] >= 1000
    for command in ("zadd", "zrem", "hset", "xadd", "sadd", "smismember"):
        assert after.get(command, 0) - before.get(command, 0) <= 3, command
    assert client.zcard(keys.TRACKED) >= 1000  # all within budget: still tracked
    producer.close()


def start_beat(deployment: Deployment, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "beat"],
            env=deployment.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _calls(client: redis.Redis) -> dict[str, int]:
    stats: Any = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def test_policy_check_names_line_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "runctl.toml"
    broken.write_text('[[rule]]\nname = "a"\naction = "nuke"\nmax_age = { in_progress = "soon" }\n')
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "policy", "check", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert any("line 3: rule[0].action:" in line for line in lines)
    assert any("line 4: rule[0].max_age.in_progress:" in line for line in lines)


@pytest.mark.parametrize("group", ["policy", "notify"])
def test_a_check_of_an_unreadable_or_good_file_says_so(group: str, tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", group, "check", str(path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    missing = check(tmp_path / "absent.toml")
    assert missing.returncode == 2
    assert "FILE: cannot be read: No such file or directory" in missing.stderr
    good = tmp_path / "runctl.toml"
    good.write_text('[[rule]]\nname = "default"\nmax_age = { in_progress = "2h" }\n')
    done = check(good)
    assert (done.returncode, done.stdout.strip()) == (0, f"{good}: ok")

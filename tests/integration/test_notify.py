"""The notifier against real receivers (processes of the test's own on 127.0.0.1, allow-
listed) and a real Redis: signatures verify, a SIGKILLed notifier loses nothing and a
de-duplicating receiver processes nothing twice, a receiver down for 30 s gets its events
after, a redirect to the metadata address is refused and reported, and replayed."""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from orchestrator.core.models import Outcome, Result
from orchestrator.store import keys
from orchestrator.store.bulk import BulkStore
from orchestrator.store.outcomes import OutcomeStore
from tests.integration.harness import every_value, fresh_database, wait_for

pytestmark = pytest.mark.integration

DATABASE = 6
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
PD_KEY = f"pd-routing-{secrets.token_hex(8)}"


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    port: int

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self) -> dict[str, Any]:
        reply: dict[str, Any] = httpx.get(self.url("/_received"), timeout=10).json()
        return reply

    def requests(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r for r in self.received()["requests"] if r["path"] == path]


@contextmanager
def receiver(*args: str) -> Iterator[Receiver]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.notify_receiver", *args],
        stdout=subprocess.PIPE, text=True, env={"RECEIVER_SECRET": SECRET, "PATH": ""},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield Receiver(process, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class Notifier:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def notifier_env(redis_url: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
    env.update(RUNCTL_REDIS_URL=redis_url, RUNCTL_LOG_JSON="true", PYTHONUNBUFFERED="1",
               HOOK_SECRET=SECRET, PD_KEY=PD_KEY)  # fmt: skip
    return env


def start_notifier(config: Path, redis_url: str, log_dir: Path) -> Notifier:
    log_path = log_dir / f"notifier-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "notify", "run", "--config", str(config)],
            env=notifier_env(redis_url), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    notifier = Notifier(process, log_path)
    client = redis.Redis.from_url(redis_url)

    def grouped() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"notifier exited early:\n{notifier.log()[-3000:]}")
        try:
            return bool(client.xinfo_groups(keys.BULK_FINISHED))
        except redis.ResponseError:
            return False

    try:
        wait_for(grouped, timeout_s=30, what="the notifier's consumer groups")
    finally:
        client.close()
    return notifier


def write_config(path: Path, tables: str, **notifier: str) -> Path:
    options = {"allow_hosts": '["127.0.0.1"]', "claim_idle": '"2s"', "lease": '"5s"'}
    options.update(notifier)
    lines = ["[notifier]", *(f"{k} = {v}" for k, v in options.items()), "", tables]
    path.write_text("\n".join(lines))
    return path


def webhook(url: str, name: str = "hook", extra: str = "") -> str:
    return (f'[[notify]]\nname = "{name}"\nkind = "webhook"\nurl = "{url}"\n'
            f'secret_env = "HOOK_SECRET"\n{extra}\n')  # fmt: skip


def publish(client: redis.Redis, count: int, *, result: Result = Result.CANCELLED,
            bulk_id: str | None = None) -> list[str]:  # fmt: skip
    """Publish outcomes through the workers' own store (the publish script)."""
    store = OutcomeStore(client, stream_maxlen=100_000, keep_s=3600, progress_keep_s=3600)
    now = datetime.now(UTC)
    job_ids = []
    for _ in range(count):
        job_id = f"job_{uuid.uuid4().hex}"
        outcome = Outcome(job_id=job_id, thread_id="thread_n", run_id=f"run_{job_id[4:12]}",
                          result=result, requested_at=now, finished_at=now, duration_s=0.1,
                          bulk_id=bulk_id)  # fmt: skip
        assert store.publish(outcome, provider="assistants")
        job_ids.append(job_id)
    return job_ids


def job_ids_in(requests: list[dict[str, Any]]) -> list[str]:
    return [json.loads(r["body"])["data"]["job_id"] for r in requests]


@pytest.fixture
def db_url(redis_url: str) -> str:
    return fresh_database(redis_url, DATABASE)


@pytest.fixture
def db(db_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(db_url)
    yield client
    found = [v for v in every_value(client) if SECRET.encode() in v or PD_KEY.encode() in v]
    client.close()
    assert not found, "a notify secret was left in Redis"


def test_every_event_arrives_signed_and_pagerduty_resolves_when_the_run_ends(
    db: redis.Redis, db_url: str, tmp_path: Path
) -> None:
    with receiver() as hooks:
        tables = (
            webhook(hooks.url("/hook"))
            + f'[[notify]]\nname = "chat"\nkind = "slack"\nurl = "{hooks.url("/slack")}"\n'
            + 'events = ["bulk.finished", "enforcement.alert"]\n'
            + f'[[notify]]\nname = "pager"\nkind = "pagerduty"\nurl = "{hooks.url("/pd")}"\n'
            + 'secret_env = "PD_KEY"\n'
        )
        notifier = start_notifier(write_config(tmp_path / "runctl.toml", tables), db_url, tmp_path)
        try:
            bulks = BulkStore(db, keep_s=3600)
            bulks.create("bulk_n1", source="test", requested_by="t", rate_limit_rps=None)
            bulks.add("bulk_n1", seen=3, queued=3)
            bulks.enqueued("bulk_n1")
            alert = {"at": 1.0, "action": "alerted", "rule": "stuck", "reissues": 2,
                     "run": {"thread_id": "thread_s", "run_id": "run_s"}}  # fmt: skip
            db.xadd(keys.ALERTS, {"alert": json.dumps(alert)})
            jobs = publish(db, 3, bulk_id="bulk_n1")
            store = OutcomeStore(db, stream_maxlen=1000, keep_s=3600, progress_keep_s=3600)
            now = datetime.now(UTC)
            store.publish(Outcome(job_id="job_ends_s", thread_id="thread_s", run_id="run_s",
                                  result=Result.CANCELLED, requested_at=now, finished_at=now,
                                  duration_s=1.0), provider="assistants")  # fmt: skip

            def everything() -> bool:
                got = hooks.received()["requests"]
                paths = [r["path"] for r in got]
                return (
                    paths.count("/hook") >= 6
                    and paths.count("/slack") >= 2
                    and (paths.count("/pd") >= 2)
                )

            wait_for(everything, timeout_s=60, what="every delivery")
        finally:
            notifier.stop()
        hook, slack_sent, pd_sent = (hooks.requests(p) for p in ("/hook", "/slack", "/pd"))
    assert all(r["verified"] is True for r in hook), "a signature did not verify"
    types = sorted(json.loads(r["body"])["type"] for r in hook)
    assert types == ["bulk.finished", "enforcement.alert"] + ["run.outcome"] * 4
    assert set(jobs) <= set(job_ids_in([r for r in hook if '"run.outcome"' in r["body"]]))
    finished = next(json.loads(r["body"]) for r in hook if '"bulk.finished"' in r["body"])
    assert finished["data"]["results"] == {"cancelled": 3}
    slack = [json.loads(r["body"])["text"] for r in slack_sent]
    assert sorted(slack) == [
        "runctl ALERT: run thread_s/run_s still cancelling after 2 re-issues (rule stuck)",
        "runctl: bulk job bulk_n1 running: 3 cancelled",
    ]
    pd = [json.loads(r["body"]) for r in pd_sent]
    assert [p["event_action"] for p in pd] == ["trigger", "resolve"]
    assert {p["dedup_key"] for p in pd} == {"runctl/thread_s/run_s/stuck"}
    assert SECRET not in notifier.log()
    assert PD_KEY not in notifier.log()


def test_a_notifier_killed_mid_delivery_loses_nothing_and_nothing_is_processed_twice(
    db: redis.Redis, db_url: str, tmp_path: Path
) -> None:
    count = 200
    with receiver("--delay-ms", "100") as hooks:
        config = write_config(tmp_path / "runctl.toml", webhook(hooks.url()), concurrency="4")
        first = start_notifier(config, db_url, tmp_path)
        jobs = publish(db, count)
        wait_for(lambda: len(hooks.requests()) >= 20, timeout_s=60, what="deliveries under way")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        second = start_notifier(config, db_url, tmp_path)
        try:
            wait_for(lambda: len(hooks.received()["processed"]) >= count, timeout_s=120,
                     interval_s=0.5, what="every event processed")  # fmt: skip
        finally:
            second.stop()
        requests = hooks.requests()
    assert sorted(set(job_ids_in(requests))) == sorted(jobs)
    by_job: dict[str, set[str]] = {}
    for request in requests:
        by_job.setdefault(job_ids_in([request])[0], set()).add(request["id"])
    assert all(len(ids) == 1 for ids in by_job.values()), "a redelivery got a new webhook-id"
    assert len(requests) > count, "the kill did not interrupt a delivery: nothing was retaken"
    assert all(r["verified"] is True for r in requests)


def test_a_receiver_answering_500_for_30_s_gets_the_event_after(
    db: redis.Redis, db_url: str, tmp_path: Path
) -> None:
    with receiver("--fail-for-s", "30") as hooks:
        config = write_config(
            tmp_path / "runctl.toml", webhook(hooks.url()),
            retry_delays='["1s", "2s", "4s", "8s", "8s", "8s", "8s", "8s"]',
        )  # fmt: skip
        notifier = start_notifier(config, db_url, tmp_path)
        try:
            (job_id,) = publish(db, 1, result=Result.TIMED_OUT)
            wait_for(lambda: hooks.received()["processed"], timeout_s=90, interval_s=0.5,
                     what="the delivery after the outage")  # fmt: skip
        finally:
            notifier.stop()
        requests = hooks.requests()
    assert len(requests) >= 3, "it was not retried"
    assert len({r["id"] for r in requests}) == 1  # one webhook-id across every retry
    assert job_ids_in(requests) == [job_id] * len(requests)
    assert all(r["verified"] is True for r in requests)  # signed anew each time, same id
    assert db.zcard(keys.NOTIFY_DUE) == 0
    assert db.llen(keys.NOTIFY_FAILED) == 0


def test_a_redirect_to_the_metadata_address_is_refused_reported_and_can_be_replayed(
    db: redis.Redis, db_url: str, tmp_path: Path
) -> None:
    with receiver("--redirect-to", "http://169.254.169.254/latest/meta-data/") as hooks:
        config = write_config(tmp_path / "runctl.toml", webhook(hooks.url()))
        notifier = start_notifier(config, db_url, tmp_path)
        env = notifier_env(db_url)
        try:
            publish(db, 1)

            def reported() -> list[dict[str, Any]]:
                shown = subprocess.run(
                    [sys.executable, "-m", "orchestrator", "notify", "failed", "--json"],
                    env=env, capture_output=True, text=True, timeout=60, check=True,
                )  # fmt: skip
                return [json.loads(line) for line in shown.stdout.splitlines()]

            (failed,) = wait_for(reported, timeout_s=60, what="the refusal in the failed list")
            assert "redirect refused" in failed["last_error"]
            assert "169.254.169.254" in failed["last_error"]
            assert len(hooks.requests()) == 1  # refused for good: not retried

            replayed = subprocess.run(
                [sys.executable, "-m", "orchestrator", "notify", "replay", "--all"],
                env=env, capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            assert replayed.stdout.startswith("1 deliveries queued again")
            wait_for(lambda: len(hooks.requests()) == 2 and reported(), timeout_s=60,
                     what="the replayed delivery refused again")  # fmt: skip
        finally:
            notifier.stop()
        first, again = hooks.requests()
    assert first["id"] == again["id"] == failed["id"]


def test_notify_test_sends_a_signed_test_event(db_url: str, tmp_path: Path) -> None:
    with receiver() as hooks:
        config = write_config(tmp_path / "runctl.toml", webhook(hooks.url(), name="ops"))
        command = [sys.executable, "-m", "orchestrator", "notify", "test"]
        sent = subprocess.run([*command, "ops", "--config", str(config)],
                              env=notifier_env(db_url), capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        unknown = subprocess.run([*command, "nobody", "--config", str(config)],
                                 env=notifier_env(db_url), capture_output=True, text=True,
                                 timeout=60, check=False)  # fmt: skip
        (request,) = hooks.requests()
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "ops: delivered (HTTP 204)"
    assert request["verified"] is True
    assert json.loads(request["body"])["type"] == "notify.test"
    assert unknown.returncode == 2
    assert "no [[notify]] table has this name (known: ops)" in unknown.stderr


def test_an_unsafe_target_is_refused_before_anything_is_sent(db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "runctl.toml", webhook("http://10.0.0.1:9/hook"),
                          allow_hosts="[]")  # fmt: skip
    sent = subprocess.run(
        [sys.executable, "-m", "orchestrator", "notify", "test", "hook", "--config", str(config)],
        env=notifier_env(db_url), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert sent.returncode == 1
    assert "unsafe target: 10.0.0.1: only https is allowed" in sent.stderr


def test_a_bulk_job_finishes_once_whether_its_last_outcome_or_its_enqueueing_ends_last(
    db: redis.Redis,
) -> None:
    bulks = BulkStore(db, keep_s=3600)
    for bulk_id in ("bulk_outcomes_first", "bulk_enqueued_first"):
        bulks.create(bulk_id, source="test", requested_by="t", rate_limit_rps=None)
        bulks.add(bulk_id, seen=2, queued=2)
    publish(db, 2, bulk_id="bulk_outcomes_first")
    assert db.xlen(keys.BULK_FINISHED) == 0  # still enqueueing: more jobs may come
    bulks.enqueued("bulk_outcomes_first")
    bulks.enqueued("bulk_enqueued_first")
    publish(db, 1, bulk_id="bulk_enqueued_first")
    assert db.xlen(keys.BULK_FINISHED) == 1
    publish(db, 1, bulk_id="bulk_enqueued_first")
    bulks.enqueued("bulk_enqueued_first")  # a second call changes nothing
    entries: Any = db.xrange(keys.BULK_FINISHED)
    finished = [fields[b"bulk_id"] for _, fields in entries]
    assert finished == [b"bulk_outcomes_first", b"bulk_enqueued_first"]

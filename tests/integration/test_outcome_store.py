"""The exactly-once guard, against a real Redis: two publishers, one outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from orchestrator.core.lifecycle import Progress
from orchestrator.core.models import CancelJob, Outcome, Result
from orchestrator.store import keys
from orchestrator.store.outcomes import OutcomeStore, Superseded

pytestmark = pytest.mark.integration


def an_outcome(job_id: str, result: Result) -> Outcome:
    now = datetime.now(UTC)
    return Outcome(
        job_id=job_id,
        thread_id="thread_1",
        run_id="run_1",
        result=result,
        requested_at=now,
        finished_at=now,
        duration_s=0.0,
    )


def test_a_second_publish_of_the_same_job_changes_nothing(redis_client: redis.Redis) -> None:
    store = OutcomeStore(redis_client, stream_maxlen=10_000, keep_s=60, progress_keep_s=60)
    job_id = "job_twice"
    redis_client.delete(keys.outcome(job_id))
    marker = keys.inflight("assistants", "thread_1", "run_1")
    redis_client.set(marker, job_id)

    assert store.publish(an_outcome(job_id, Result.CANCELLED), provider="assistants")
    assert not store.publish(an_outcome(job_id, Result.ERROR), provider="assistants")

    standing = store.published(job_id)
    assert standing is not None
    assert standing.result is Result.CANCELLED
    entries: Any = redis_client.xrange(keys.OUTCOME_STREAM)
    assert [e[b"result"] for _, e in entries if e[b"job_id"] == job_id.encode()] == [b"cancelled"]
    assert redis_client.get(marker) is None


def test_publishing_leaves_another_jobs_in_flight_marker_alone(redis_client: redis.Redis) -> None:
    store = OutcomeStore(redis_client, stream_maxlen=10_000, keep_s=60, progress_keep_s=60)
    marker = keys.inflight("assistants", "thread_1", "run_1")
    redis_client.set(marker, "job_newer")
    redis_client.delete(keys.outcome("job_older"))
    assert store.publish(an_outcome("job_older", Result.CANCELLED), provider="assistants")
    assert redis_client.get(marker) == b"job_newer"


def test_begin_returns_the_outcome_or_the_saved_progress(redis_client: redis.Redis) -> None:
    store = OutcomeStore(redis_client, stream_maxlen=10_000, keep_s=60, progress_keep_s=60)
    job = CancelJob(job_id="job_begin", thread_id="thread_1", run_id="run_1")
    job_id = job.job_id
    marker = keys.inflight("assistants", "thread_1", "run_1")
    redis_client.delete(keys.outcome(job_id), keys.job_state(job_id), marker)
    first = store.begin(job, 100.0)
    assert isinstance(first, Progress)
    assert first.started_at == 100.0
    again = store.begin(job, 200.0)
    assert isinstance(again, Progress)
    assert again.started_at == 100.0  # the deadline counts from the first start
    assert 0 < redis_client.ttl(keys.job_state(job_id)) <= 60
    store.publish(an_outcome(job_id, Result.CANCELLED), provider="assistants")
    assert isinstance(store.begin(job, 300.0), Outcome)
    assert not redis_client.exists(keys.job_state(job_id))


def test_begin_says_superseded_when_another_job_took_the_run(redis_client: redis.Redis) -> None:
    store = OutcomeStore(redis_client, stream_maxlen=10_000, keep_s=60, progress_keep_s=60)
    forced_over = CancelJob(job_id="job_forced_over", thread_id="thread_2", run_id="run_2")
    expired = CancelJob(job_id="job_expired", thread_id="thread_3", run_id="run_3")
    mine = CancelJob(job_id="job_mine", thread_id="thread_4", run_id="run_4")
    for job in (forced_over, expired, mine):
        redis_client.delete(keys.outcome(job.job_id), keys.job_state(job.job_id))
        redis_client.hdel(keys.SUPERSEDED, job.job_id)
    redis_client.hset(keys.SUPERSEDED, forced_over.job_id, "job_new")  # `cancel --force`
    redis_client.set(keys.inflight(expired.provider, "thread_3", "run_3"), "job_other")
    redis_client.set(keys.inflight(mine.provider, "thread_4", "run_4"), "job_mine")

    assert store.begin(forced_over, 1.0) == Superseded(by_job_id="job_new")
    assert store.begin(expired, 1.0) == Superseded(by_job_id="job_other")
    assert isinstance(store.begin(mine, 1.0), Progress)
    assert not redis_client.exists(keys.job_state(forced_over.job_id))  # nothing started

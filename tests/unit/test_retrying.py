"""The retry policy as pure functions: what is retried, how long it waits, when it stops."""

from __future__ import annotations

import httpx
import pytest
import redis

from orchestrator.core.retrying import RetryPolicy, backoff_s, call_with_retries, is_retryable
from orchestrator.providers.assistants import error_from_response, retry_after_s
from orchestrator.providers.base import ProviderError, ProviderUnreachable
from orchestrator.store.outages import call_through_redis_outages, is_redis_outage
from tests.unit.fakes import START_S, FakeClock


def http_error(status: int, code: str | None = None, **kw: object) -> ProviderError:
    return ProviderError("x", http_status=status, code=code, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(http_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_not_retried(status: int) -> None:
    assert not is_retryable(http_error(status))


def test_connection_errors_and_timeouts_are_retried() -> None:
    assert is_retryable(ProviderUnreachable("ConnectTimeout"))


@pytest.mark.parametrize("code", ["insufficient_quota", "billing_hard_limit_reached"])
def test_quota_429_is_not_retried(code: str) -> None:
    # The dialect recognises the code; the policy never retries what it marks.
    error = error_from_response(httpx.Response(429, json={"error": {"code": code}}))
    assert error.quota_exhausted
    assert not is_retryable(error)


def test_a_cannot_cancel_refusal_names_its_status() -> None:
    body = {"error": {"message": "Cannot cancel run with status 'completed'."}}
    assert error_from_response(httpx.Response(400, json=body)).refused_status == "completed"
    assert error_from_response(httpx.Response(500, json=body)).refused_status is None


def test_x_should_retry_overrides_the_status() -> None:
    assert is_retryable(http_error(400, should_retry=True))
    assert not is_retryable(http_error(503, should_retry=False))


def test_non_provider_errors_are_not_retried() -> None:
    assert not is_retryable(ValueError("bug"))


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    policy = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=4.0)
    assert [backoff_s(policy, n, lambda: 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_s(policy, 1, lambda: 1.0) == pytest.approx(0.375)


def _failing(errors: list[ProviderError]) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return calls, fn


def test_waits_exactly_what_the_server_asked_then_succeeds() -> None:
    clock = FakeClock()
    calls, fn = _failing([http_error(429, retry_after_s=1.5), http_error(503, retry_after_s=0.2)])
    result: object = call_with_retries(
        fn,  # type: ignore[arg-type]
        policy=RetryPolicy(),
        deadline_at=START_S + 60,
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.0,
    )
    assert result == "ok"
    assert clock.sleeps == [1.5, 0.2]
    assert len(calls) == 3


def test_stops_after_max_attempts_and_reraises_the_last_error() -> None:
    clock = FakeClock()
    calls, fn = _failing([http_error(500) for _ in range(10)])
    with pytest.raises(ProviderError):
        call_with_retries(
            fn,  # type: ignore[arg-type]
            policy=RetryPolicy(max_attempts=3, backoff_initial_s=1.0),
            deadline_at=START_S + 600,
            clock=clock,
            sleep=clock.sleep,
            rand=lambda: 0.0,
        )
    assert len(calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_never_retries_past_the_deadline() -> None:
    clock = FakeClock()
    _calls, fn = _failing([http_error(429, retry_after_s=5.0) for _ in range(10)])
    with pytest.raises(ProviderError):
        call_with_retries(
            fn,  # type: ignore[arg-type]
            policy=RetryPolicy(max_attempts=10),
            deadline_at=START_S + 12,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps == [5.0, 5.0]  # a third wait would end at 15 s, past the 12 s deadline


def test_a_server_delay_beyond_the_cap_is_not_waited_and_not_shortened() -> None:
    clock = FakeClock()
    _calls, fn = _failing([http_error(429, retry_after_s=120.0)])
    with pytest.raises(ProviderError):
        call_with_retries(
            fn,  # type: ignore[arg-type]
            policy=RetryPolicy(server_delay_max_s=60.0),
            deadline_at=START_S + 3600,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.sleeps == []


def test_permanent_errors_are_raised_at_once() -> None:
    clock = FakeClock()
    calls, fn = _failing([http_error(401)])
    with pytest.raises(ProviderError):
        call_with_retries(
            fn,  # type: ignore[arg-type]
            policy=RetryPolicy(),
            deadline_at=START_S + 60,
            clock=clock,
            sleep=clock.sleep,
        )
    assert len(calls) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250.5", "retry-after": "9"}, 0.2505),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_parsing(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_s(httpx.Headers(headers), now=now) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_error_body_is_read_and_headers_become_hints() -> None:
    response = httpx.Response(
        429,
        json={
            "error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}
        },
        headers={"retry-after": "2", "x-should-retry": "true"},
    )
    error = error_from_response(response)
    assert (error.http_status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.retry_after_s == 2.0
    assert error.should_retry is True


def test_an_error_without_a_json_body_still_maps() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert error.http_status == 502
    assert error.message == "Bad Gateway"
    assert is_retryable(error)


@pytest.mark.parametrize(
    "body", [b"<html>proxy error</html>", b"{}", b'{"id": "run_1"}', b'{"status": 3}']
)
def test_an_unreadable_success_answer_is_a_transient_provider_error(body: bytes) -> None:
    from orchestrator.providers.assistants import _parse_run

    with pytest.raises(ProviderError) as caught:
        _parse_run(httpx.Response(200, content=body))
    assert caught.value.http_status == 200
    assert is_retryable(caught.value)
    assert "unreadable Run" in caught.value.message


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b"[]", b'{"id": "resp_1"}'])
def test_an_answer_without_the_keys_a_kind_needs_is_transient(body: bytes) -> None:
    from orchestrator.providers._http import json_object

    with pytest.raises(ProviderError) as caught:
        json_object(httpx.Response(200, content=body), required=("id", "status"), what="Response")
    assert is_retryable(caught.value)
    assert caught.value.message == "unreadable Response in a 200 answer"
    good = httpx.Response(200, content=b'{"id": "resp_1", "status": "cancelled"}')
    assert json_object(good, required=("id", "status"), what="Response")["status"] == "cancelled"


def redis_reply_error(reply: str) -> redis.RedisError:
    """The exception redis-py raises for this error reply (its own parser picks the class)."""
    from redis._parsers.base import BaseParser

    error: redis.RedisError = BaseParser.parse_error(reply)  # type: ignore[no-untyped-call]
    return error


@pytest.mark.parametrize(
    "exc",
    [
        redis.ConnectionError("Connection refused"),
        redis.TimeoutError("Timeout reading from socket"),
        redis_reply_error("LOADING Redis is loading the dataset in memory"),
        redis_reply_error("READONLY You can't write against a read only replica."),
        redis_reply_error("OOM command not allowed when used memory > 'maxmemory'."),
        redis_reply_error("MASTERDOWN Link with MASTER is down"),
        redis_reply_error("TRYAGAIN Multiple keys request during rehashing of slot"),
        redis_reply_error("BUSY Redis is busy running a script."),
        redis_reply_error("MISCONF Redis is configured to save RDB snapshots"),
        redis_reply_error(
            "ERR Error running script (call to f_1): @user_script:3: -OOM command not allowed"
        ),
    ],
)
def test_a_redis_outage_is_waited_for(exc: redis.RedisError) -> None:
    assert is_redis_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis_reply_error("WRONGTYPE Operation against a key holding the wrong kind of value"),
        redis_reply_error("ERR Error running script (call to f_1): attempt to compare nil"),
        ValueError("not redis at all"),
    ],
)
def test_a_refused_redis_command_is_not_an_outage(exc: Exception) -> None:
    assert not is_redis_outage(exc)


def test_a_job_runs_again_after_a_redis_outage_with_growing_waits() -> None:
    clock = FakeClock()
    outages: list[Exception] = [redis.ConnectionError("down") for _ in range(5)]
    calls: list[int] = []

    def job() -> str:
        calls.append(1)
        if outages:
            raise outages.pop(0)
        return "published"

    got = call_through_redis_outages(
        job, outage_max_s=300, clock=clock, sleep=clock.sleep, rand=lambda: 0.0
    )
    assert got == "published"
    assert len(calls) == 6
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_a_redis_outage_longer_than_the_limit_raises_its_error() -> None:
    clock = FakeClock()

    def job() -> str:
        raise redis.ConnectionError("down for good")

    with pytest.raises(redis.ConnectionError):
        call_through_redis_outages(
            job, outage_max_s=30, clock=clock, sleep=clock.sleep, rand=lambda: 0.0
        )
    assert clock.now_s - START_S <= 30
    assert max(clock.sleeps) == 5.0  # capped: Redis is looked at every few seconds


def test_a_refused_redis_command_is_raised_at_once() -> None:
    clock = FakeClock()

    def job() -> str:
        raise redis.ResponseError("WRONGTYPE Operation against a key")

    with pytest.raises(redis.ResponseError):
        call_through_redis_outages(job, outage_max_s=30, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []

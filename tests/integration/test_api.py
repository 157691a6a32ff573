"""`runctl serve`'s HTTP API end to end: uvicorn, a real Redis, a real worker, the simulator.

Given the API over the deployment, when a client cancels, follows outcomes and runs bulk
jobs through it, then the jobs reach outcomes, the SSE feed resumes exactly where it left
off, bad input is refused naming the field (nothing queued), and every role meets every
route as the rules say.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, cast

import httpx
import pytest
import redis

from orchestrator.core.models import Result
from orchestrator.store import keys
from tests.integration.api_server import Served, bearer, serving
from tests.integration.harness import Deployment, Sim, Worker, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(deployment: Deployment, worker: Worker) -> Iterator[Served]:
    with serving(deployment.settings(), api_rate_limit_rps=1000.0) as served:
        yield served


@pytest.fixture(scope="module")
def http(api: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        yield client


def stream(
    client: redis.Redis, key: str, *, after: str | None = None
) -> list[tuple[str, dict[bytes, bytes]]]:
    """A stream's entries (after the id `after`), as (id, fields)."""
    entries = cast(list[Any], client.xrange(key, f"({after}" if after else "-", "+"))
    return [(keys.text(i), fields) for i, fields in entries]


def outcome_via_api(http: httpx.Client, job_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        reply = http.get(f"/v1/cancels/{job_id}", headers=bearer("viewer"))
        assert reply.status_code in (200, 404)
        body: dict[str, object] = reply.json()
        return body if body.get("state") == "done" else None

    return wait_for(done, timeout_s=60, interval_s=0.2, what=f"job {job_id} to finish")


def test_a_cancel_through_the_api_reaches_its_outcome(sim: Sim, http: httpx.Client) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress")
    reply = http.post(
        "/v1/cancels",
        json={"thread_id": thread_id, "run_id": run_id, "reason": "incident 7"},
        headers=bearer("operator"),
    )
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["job_id"]
    assert reply.json()["duplicate"] is False

    view = outcome_via_api(http, job_id)
    outcome = view["outcome"]
    assert isinstance(outcome, dict)
    assert outcome["result"] == Result.CANCELLED.value
    assert outcome["reason"] == "incident 7"

    run = http.get(
        f"/v1/runs/openai/{run_id}", params={"thread_id": thread_id}, headers=bearer("viewer")
    ).json()
    assert [o["job_id"] for o in run["outcomes"]] == [job_id]
    assert run["in_flight"] is None


def test_mutating_requests_record_the_token_as_requested_by(
    sim: Sim, http: httpx.Client, redis_client: redis.Redis
) -> None:
    thread_id, run_id = sim.seed_one(status="in_progress")
    reply = http.post(
        "/v1/cancels", json={"thread_id": thread_id, "run_id": run_id}, headers=bearer("admin")
    )
    job_id = reply.json()["job_id"]
    outcome_via_api(http, job_id)
    cancels = [r for r in sim.requests() if r.get("run_id") == run_id]
    assert cancels, "the simulator saw no request for the run"
    log = http.get("/v1/audit/requests", headers=bearer("viewer")).json()
    assert {"token": "admin-bot", "action": "cancel", "target": job_id}.items() <= log[0].items()
    entries = stream(redis_client, keys.API_REQUESTS)
    assert b"tok-admin-1" not in b"".join(v for _, f in entries for v in f.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"thread_id": "thread_1", "run_id": "bad/id"}, "run_id"),
        ({"thread_id": "thread_1", "run_id": "run_1", "deadline_s": 0.1}, "deadline_s"),
        ({"thread_id": "thread_1", "run_id": "run_1", "provider": "nope"}, "provider"),
        ({"thread_id": "thread_1", "run_id": "run_1", "requested_by": "me"}, "requested_by"),
        ({"thread_id": "thread_1"}, "run_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_nothing_is_queued(
    http: httpx.Client, redis_client: redis.Redis, body: dict[str, object], field: str
) -> None:
    accepted_before = redis_client.zcard(keys.ACCEPTED)
    reply = http.post("/v1/cancels", json=body, headers=bearer("operator"))
    assert reply.status_code == 422, reply.text
    [detail] = reply.json()["detail"]
    assert detail["loc"][-1] == field
    assert detail["msg"]
    assert redis_client.zcard(keys.ACCEPTED) == accepted_before


def read_events(response: httpx.Response, count: int) -> list[tuple[str, dict[str, object]]]:
    """The first `count` SSE events of a streaming response: (id, data)."""
    events: list[tuple[str, dict[str, object]]] = []
    event_id, data = "", ""
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            events.append((event_id, json.loads(data)))
            event_id, data = "", ""
            if len(events) == count:
                break
    return events


def cancel_many(http: httpx.Client, sim: Sim, count: int) -> list[str]:
    runs = sim.seed(count, status="in_progress")
    body = [{"thread_id": t, "run_id": r} for t, r in runs]
    reply = http.post("/v1/bulk", json=body, headers=bearer("operator"))
    assert reply.status_code == 202, reply.text
    bulk_id: str = reply.json()["bulk_id"]
    return [bulk_id]


def test_the_outcome_feed_resumes_after_the_last_event_id_with_exactly_the_missed_ones(
    sim: Sim, http: httpx.Client, redis_client: redis.Redis
) -> None:
    before = stream(redis_client, keys.OUTCOME_STREAM)
    start = before[-1][0] if before else "0-0"
    [bulk_id] = cancel_many(http, sim, 6)
    wait_for(
        lambda: http.get(f"/v1/bulk/{bulk_id}", headers=bearer("viewer")).json()["done"] == 6,
        timeout_s=60, interval_s=0.2, what="the bulk job",
    )  # fmt: skip
    headers = bearer("viewer") | {"Last-Event-ID": start}
    with http.stream("GET", "/v1/outcomes/stream", headers=headers) as first:
        assert first.headers["content-type"].startswith("text/event-stream")
        seen = read_events(first, 2)
    resumed_from = seen[-1][0]
    headers = bearer("viewer") | {"Last-Event-ID": resumed_from}
    with http.stream("GET", "/v1/outcomes/stream", headers=headers) as second:
        rest = read_events(second, 4)
    ids = [i for i, _ in seen + rest]
    stream_ids = [i for i, _ in stream(redis_client, keys.OUTCOME_STREAM, after=start)][:6]
    assert ids == stream_ids
    assert {e["bulk_id"] for _, e in seen + rest} == {bulk_id}


def bulk_done(http: httpx.Client, bulk_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        record: dict[str, Any] = http.get(f"/v1/bulk/{bulk_id}", headers=bearer("viewer")).json()
        done = record["status"] != "enqueueing" and record["done"] >= record["queued"]
        return record if done else None

    return wait_for(finished, timeout_s=60, interval_s=0.2, what=f"bulk job {bulk_id}")


@pytest.mark.parametrize("form", ["json", "jsonl", "csv"])
def test_a_bulk_job_from_each_body_form_cancels_every_run_and_reports_it(
    sim: Sim, http: httpx.Client, form: str
) -> None:
    runs = sim.seed(4, status="in_progress")
    rows = [{"thread_id": t, "run_id": r} for t, r in runs]
    content, content_type = {
        "json": (json.dumps(rows), "application/json"),
        "jsonl": ("\n".join(json.dumps(r) for r in rows), "application/x-ndjson"),
        "csv": ("thread_id,run_id\n" + "\n".join(f"{t},{r}" for t, r in runs), "text/csv"),
    }[form]
    headers = bearer("operator") | {"Content-Type": content_type}
    reply = http.post("/v1/bulk", content=content, headers=headers, params={"reason": form})
    assert reply.status_code == 202, reply.text
    bulk_id = reply.json()["bulk_id"]

    record = bulk_done(http, bulk_id)
    assert record["queued"] == 4
    assert record["results"] == {"cancelled": 4}
    assert record["requested_by"] == "operator-bot"
    csv_report = http.get(f"/v1/bulk/{bulk_id}/report", headers=bearer("viewer"))
    assert csv_report.headers["content-type"].startswith("text/csv")
    lines = csv_report.text.splitlines()
    assert lines[0].startswith("job_id,thread_id,run_id,result")
    assert sorted(line.split(",")[2] for line in lines[1:]) == sorted(r for _, r in runs)
    jsonl = http.get(
        f"/v1/bulk/{bulk_id}/report", headers=bearer("viewer") | {"Accept": "application/x-ndjson"}
    )
    assert {json.loads(line)["reason"] for line in jsonl.text.splitlines()} == {form}


def test_a_bulk_body_with_a_bad_line_is_refused_whole_and_a_dry_run_sends_nothing(
    http: httpx.Client, redis_client: redis.Redis
) -> None:
    accepted_before = redis_client.zcard(keys.ACCEPTED)
    body = "thread_id,run_id\nthread_a,run_a\nthread_b,bad/id\n"
    headers = bearer("operator") | {"Content-Type": "text/csv"}
    refused = http.post("/v1/bulk", content=body, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "line 3", "run_id"]
    dry = http.post("/v1/bulk", content=body, headers=headers, params={"dry_run": "true"})
    assert dry.status_code == 200
    assert dry.json()["runs"] == 1
    assert len(dry.json()["problems"]) == 1
    too_long = http.post("/v1/bulk", content=body, headers=headers, params={"deadline_s": "-1"})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["query", "deadline_s"]
    assert redis_client.zcard(keys.ACCEPTED) == accepted_before


def test_a_bulk_job_aborted_through_the_api_ends_its_other_jobs_skipped(
    sim: Sim, http: httpx.Client
) -> None:
    runs = sim.seed(12, status="in_progress")
    reply = http.post(
        "/v1/bulk",
        json=[{"thread_id": t, "run_id": r} for t, r in runs],
        params={"rate_limit_rps": "2"},
        headers=bearer("operator"),
    )
    bulk_id = reply.json()["bulk_id"]
    aborted = http.post(f"/v1/bulk/{bulk_id}/abort", headers=bearer("operator"))
    assert aborted.status_code == 200
    assert aborted.json()["status"] == "aborted"
    record = bulk_done(http, bulk_id)
    assert record["results"].get("skipped", 0) > 0
    missing = http.post("/v1/bulk/bulk_nope/abort", headers=bearer("operator"))
    assert missing.status_code == 404


def test_a_body_over_the_limit_is_a_413_and_mutations_over_the_rate_a_429(
    deployment: Deployment, worker: Worker
) -> None:
    settings = deployment.settings()
    limits = {"api_max_body_bytes": 2048, "api_rate_limit_rps": 0.5, "api_rate_burst_s": 0.0}
    with serving(settings, **limits) as served, httpx.Client(base_url=served.base_url) as http:
        first = http.post("/v1/bulk/bulk_x/abort", headers=bearer("operator"))
        assert first.status_code == 404
        again = http.post("/v1/bulk/bulk_x/abort", headers=bearer("operator"))
        assert again.status_code == 429
        assert int(again.headers["Retry-After"]) >= 1
        other = http.post("/v1/bulk/bulk_x/abort", headers=bearer("admin"))
        assert other.status_code == 404  # the limit is per token: admin still had its turn

        big = http.post("/v1/bulk", content="x" * 5000, headers=bearer("admin"))
        assert big.status_code == 413  # refused on its Content-Length

        def chunks() -> Iterator[bytes]:
            yield from (b"y" * 1000 for _ in range(5))

        chunked = http.post("/v1/cancels", content=chunks(), headers=bearer("viewer"))
        assert chunked.status_code == 413  # refused as the chunks pass the limit


ROLES = ["viewer", "operator", "admin"]
V, OP, A = "viewer", "operator", "admin"
ROUTES: list[tuple[str, str, str | None, int]] = [
    # method, path ({bulk}, {job} filled in), the least role, the success status
    ("GET", "/healthz", None, 200),
    ("GET", "/readyz", V, 200),
    ("GET", "/v1/fleet", V, 200),
    ("GET", "/metrics", V, 200),
    ("GET", "/v1/cancels/{job}", V, 200),
    ("GET", "/v1/runs/openai/run_auth?thread_id=thread_auth", V, 200),
    ("GET", "/v1/bulk/{bulk}", V, 200),
    ("GET", "/v1/bulk/{bulk}/report", V, 200),
    ("GET", "/v1/outcomes/stream", V, 200),
    ("GET", "/v1/events", V, 200),
    ("GET", "/v1/alerts", V, 200),
    ("GET", "/v1/audit", V, 200),
    ("GET", "/v1/audit/requests", V, 200),
    ("GET", "/v1/dead-letters", A, 200),
    ("POST", "/v1/cancels", OP, 202),
    ("POST", "/v1/bulk?dry_run=true", OP, 200),
    ("POST", "/v1/bulk/{bulk}/abort", OP, 200),
    ("POST", "/v1/tracked-runs", A, 200),
    ("POST", "/v1/watched-threads", A, 200),
    ("GET", "/openapi.json", V, 200),
    ("GET", "/signin", None, 200),  # the dashboard's sign-in form and its assets are public
    ("GET", "/static/dashboard.js", None, 200),
]


@pytest.fixture(scope="module")
def finished_bulk(sim: Sim, http: httpx.Client) -> tuple[str, str]:
    """A finished bulk job of one run, and its job id."""
    [(thread_id, run_id)] = sim.seed(1, status="in_progress")
    reply = http.post(
        "/v1/bulk", json=[{"thread_id": thread_id, "run_id": run_id}], headers=bearer("admin")
    )
    bulk_id = reply.json()["bulk_id"]
    bulk_done(http, bulk_id)
    report = http.get(f"/v1/bulk/{bulk_id}/report?format=jsonl", headers=bearer("viewer"))
    return bulk_id, json.loads(report.text.splitlines()[0])["job_id"]


def expected_status(least: str | None, who: str | None, success: int) -> int:
    if least is None:
        return success
    if who not in ROLES:
        return 401
    return success if ROLES.index(who) >= ROLES.index(least) else 403


@pytest.mark.parametrize(("method", "path", "least", "success"), ROUTES)
def test_every_role_against_every_route(
    http: httpx.Client,
    finished_bulk: tuple[str, str],
    method: str,
    path: str,
    least: str | None,
    success: int,
) -> None:
    bulk_id, job_id = finished_bulk
    url = path.format(bulk=bulk_id, job=job_id)
    for who in [None, "stranger", *ROLES]:
        headers = {} if who is None else {"Authorization": f"Bearer tok-{who}"}
        if who in ROLES:
            headers = bearer(who)
        body: object = None
        if method == "POST" and "cancels" in url:
            body = {"thread_id": f"thread_auth_{who}", "run_id": "run_auth"}
        elif method == "POST" and url.startswith("/v1/bulk?"):
            body = [{"thread_id": "thread_auth", "run_id": "run_auth"}]
        elif method == "POST" and "tracked" in url:
            body = {"thread_id": "thread_auth", "run_id": "run_auth"}
        elif method == "POST" and "watched" in url:
            body = {"thread_id": "thread_auth"}
        with http.stream(method, url, json=body, headers=headers) as reply:
            wanted = expected_status(least, who, success)
            assert reply.status_code == wanted, f"{who} {method} {url}: {reply.read()!r}"


def test_the_fleet_counts_live_workers_and_a_bad_last_event_id_is_a_422(
    http: httpx.Client,
) -> None:
    fleet = http.get("/v1/fleet", headers=bearer("viewer")).json()
    assert fleet["workers_alive"] >= 1  # the session worker holds a lease
    assert {"workers_alive", "jobs_in_flight", "queue_depth", "oldest_queued_age_s"} <= set(fleet)
    scraped = http.get("/metrics", headers=bearer("viewer"))
    assert scraped.headers["content-type"].startswith("text/plain")
    assert f"runctl_workers_alive {float(fleet['workers_alive'])}" in scraped.text
    headers = bearer("viewer") | {"Last-Event-ID": "yesterday"}
    bad = http.get("/v1/outcomes/stream", headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][-1] == "Last-Event-ID"


def test_a_bulk_job_from_discovery_filters_cancels_a_threads_live_runs(
    sim: Sim, deployment: Deployment, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Discovery lists runs from the API's own process: the provider's URL in its settings,
    # the key in its environment.
    monkeypatch.setenv("OPENAI_API_KEY", sim.api_key)
    live = sim.seed(3, status="in_progress", runs_per_thread=3)
    thread_id = live[0][0]
    sim.seed(2, status="completed", thread_id=thread_id)
    filters = {"threads": [thread_id], "status": "in_progress"}
    with (
        serving(deployment.settings(), base_url=sim.base_url) as served,
        httpx.Client(base_url=served.base_url, timeout=60, headers=bearer("operator")) as http,
    ):
        dry = http.post("/v1/bulk", json=filters, params={"dry_run": "true"})
        assert dry.json() == {"dry_run": True, "runs": 3, "problems": []}
        reply = http.post("/v1/bulk", json=filters)
        assert reply.status_code == 202, reply.text
        record = bulk_done(http, reply.json()["bulk_id"])
        assert record["results"] == {"cancelled": 3}
        bad = http.post("/v1/bulk", json={"threads": [thread_id], "older_than": "soon"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"][-1] == "older_than"


def test_many_open_outcome_feeds_leave_the_other_routes_answering(api: Served) -> None:
    # Sync routes run in a pool of 40 threads: a feed that held one would starve them.
    limits = httpx.Limits(max_connections=100)
    with ExitStack() as stack:
        http = stack.enter_context(httpx.Client(base_url=api.base_url, limits=limits, timeout=10))
        for _ in range(50):
            feed = stack.enter_context(
                http.stream("GET", "/v1/outcomes/stream", headers=bearer("viewer"))
            )
            assert feed.status_code == 200
        assert http.get("/v1/fleet", headers=bearer("viewer")).status_code == 200

"""Each kind's dialect drives the one lifecycle: langgraph's 202 with no body, its ambiguous
404 on cancel (look, then decide), a rollback's 404 meaning cancelled, and every outcome
naming the connection and its kind."""

from __future__ import annotations

from orchestrator.core.lifecycle import Lifecycle, PollPolicy, Progress
from orchestrator.core.models import CancelJob, Outcome, Result
from orchestrator.core.provider import Dialect
from orchestrator.core.retrying import RetryPolicy
from orchestrator.providers import azure_agents, langgraph, responses
from orchestrator.providers.base import ProviderError, ProviderReply
from tests.unit.fakes import START_S, FakeClock, ScriptedProvider, reply

THREAD = "0193a6f2-4b5c-7d8e-9f00-112233445566"
RUN = "0193a6f2-4b5c-7d8e-9f00-aabbccddeeff"
JOB = CancelJob(job_id="job_1", provider="graphs", thread_id=THREAD, run_id=RUN, deadline_s=30)

ACCEPTED = ProviderReply(None)  # langgraph's 202 with an empty body
NO_MATCHING = ProviderError("No matching runs to cancel.", http_status=404)
NOT_FOUND = ProviderError("Not Found", http_status=404)


def run(provider: ScriptedProvider, job: CancelJob = JOB) -> Outcome:
    clock = FakeClock()
    lifecycle = Lifecycle(
        provider=provider,
        retry_policy=RetryPolicy(max_attempts=3, backoff_initial_s=0.5, backoff_max_s=4.0),
        poll_policy=PollPolicy(first_s=0.25, max_s=1.0),
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: 0.0,
        kind="langgraph",
    )
    return lifecycle.run(job, Progress(started_at=START_S))


def graph(dialect: Dialect = langgraph.DIALECT, **script: object) -> ScriptedProvider:
    return ScriptedProvider(dialect=dialect, **script)  # type: ignore[arg-type]


def test_an_accepted_cancel_with_no_body_is_polled_to_interrupted_which_is_cancelled() -> None:
    provider = graph(cancels=[ACCEPTED], retrieves=[reply("running"), reply("interrupted")])
    outcome = run(provider)
    assert (outcome.result, outcome.final_status) == (Result.CANCELLED, "interrupted")
    assert (outcome.provider, outcome.kind) == ("graphs", "langgraph")
    assert provider.calls == ["cancel", "retrieve", "retrieve"]


def test_a_404_on_cancel_then_a_finished_run_is_already_terminal() -> None:
    for status in ("success", "error", "timeout"):
        provider = graph(cancels=[NO_MATCHING], retrieves=[reply(status)])
        outcome = run(provider)
        assert (outcome.result, outcome.final_status) == (Result.ALREADY_TERMINAL, status)
        assert provider.calls == ["cancel", "retrieve"]


def test_a_404_on_cancel_then_a_404_on_look_is_not_found() -> None:
    provider = graph(cancels=[ProviderError("No runs found to cancel.", http_status=404)],
                     retrieves=[NOT_FOUND])  # fmt: skip
    outcome = run(provider)
    assert outcome.result is Result.NOT_FOUND
    assert outcome.error is not None
    assert outcome.error.message == "No runs found to cancel."


def test_after_a_rollback_a_404_is_the_rollback_succeeding() -> None:
    provider = graph(langgraph.ROLLBACK_DIALECT, cancels=[ACCEPTED], retrieves=[NOT_FOUND])
    outcome = run(provider)
    assert (outcome.result, outcome.final_status) == (Result.CANCELLED, langgraph.ROLLED_BACK)


def test_after_an_interrupt_a_404_is_not_found() -> None:
    provider = graph(cancels=[ACCEPTED], retrieves=[NOT_FOUND])
    assert run(provider).result is Result.NOT_FOUND


def test_assistants_404_on_cancel_is_not_found_without_a_look() -> None:
    provider = ScriptedProvider(cancels=[NOT_FOUND])
    outcome = run(provider, CancelJob(job_id="job_2", thread_id="thread_1", run_id="run_1"))
    assert outcome.result is Result.NOT_FOUND
    assert provider.calls == ["cancel"]


def test_responses_have_no_thread_and_end_cancelled() -> None:
    provider = graph(responses.DIALECT, cancels=[reply("in_progress")],
                     retrieves=[reply("cancelled")])  # fmt: skip
    job = CancelJob(job_id="job_3", provider="resp", run_id="resp_abc")
    outcome = run(provider, job)
    assert (outcome.result, outcome.thread_id, outcome.final_status) == (
        Result.CANCELLED, None, "cancelled",
    )  # fmt: skip


def test_foundry_agents_have_no_incomplete_status() -> None:
    assert not azure_agents.DIALECT.is_terminal("incomplete")
    assert azure_agents.DIALECT.is_terminal("expired")


def test_langgraph_errors_read_detail_and_runs_read_run_id() -> None:
    import httpx

    error = langgraph.error_from_response(
        httpx.Response(422, json={"detail": "Invalid run ID: must be a UUID"})
    )
    assert (error.http_status, error.message) == (422, "Invalid run ID: must be a UUID")
    run_ = langgraph._run(
        {"run_id": RUN, "thread_id": THREAD, "status": "pending",
         "created_at": "2026-12-01T04:40:54.425069+00:00", "metadata": {"a": "b"}}
    )  # fmt: skip
    assert (run_.id, run_.status, run_.metadata) == (RUN, "pending", {"a": "b"})
    assert run_.created_at is not None
    assert run_.created_at > 1.7e9

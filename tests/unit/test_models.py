"""Boundaries: ids that could bend a URL are refused with the field and the rule named."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import CancelJob, Outcome, Run
from orchestrator.providers.base import ASSISTANTS_DIALECT, TERMINAL, RunStatus
from orchestrator.store.admission import build_job


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "%2e", "a b", "run\x00", "run\n", "é", "x" * 129, "run?x=1"]
)
@pytest.mark.parametrize("field", ["thread_id", "run_id"])
def test_unsafe_ids_are_refused_naming_the_field_and_rule(field: str, bad: str) -> None:
    fields = {"thread_id": "thread_ok", "run_id": "run_ok", field: bad}
    with pytest.raises(InvalidInput) as caught:
        build_job(**fields)
    assert caught.value.field == field
    assert "A-Z a-z 0-9 _ -" in caught.value.rule
    assert str(caught.value).startswith(f"{field}: ")


def test_good_ids_are_accepted() -> None:
    job = build_job(thread_id="thread_AZaz09_-", run_id="r" * 128)
    assert job.job_id.startswith("job_")


@pytest.mark.parametrize("deadline", [0, -1, 0.5, 3601])
def test_deadline_bounds(deadline: float) -> None:
    with pytest.raises(InvalidInput) as caught:
        build_job(thread_id="t", run_id="r", deadline_s=deadline)
    assert caught.value.field == "deadline_s"


def test_unknown_job_fields_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_job(thread_id="t", run_id="r", api_key="nope")
    assert caught.value.field == "api_key"


def test_requires_action_and_cancelling_are_not_terminal() -> None:
    assert RunStatus.REQUIRES_ACTION not in TERMINAL
    assert RunStatus.CANCELLING not in TERMINAL
    assert len(TERMINAL) == 5


def test_run_is_parsed_tolerantly() -> None:
    run = Run.model_validate(
        {"id": "run_1", "status": "in_progress", "brand_new_field": {"x": 1}, "usage": None}
    )
    assert run.status == RunStatus.IN_PROGRESS
    assert not ASSISTANTS_DIALECT.is_terminal(run.status)
    novel = Run.model_validate({"id": "run_1", "status": "paused_by_operator"})
    assert novel.status == "paused_by_operator"
    assert not ASSISTANTS_DIALECT.is_terminal(novel.status)


def test_job_round_trips_through_json() -> None:
    job = CancelJob(thread_id="t", run_id="r", reason="stuck")
    assert CancelJob.model_validate(job.model_dump(mode="json")) == job


def test_outcome_json_names_no_secret_fields() -> None:
    assert set(Outcome.model_fields) == {
        "job_id", "provider", "kind", "thread_id", "run_id", "result", "final_status",
        "cancel_attempts", "polls",
        "requested_at", "finished_at", "duration_s", "error", "usage", "reason", "bulk_id",
    }  # fmt: skip


def test_odd_values_in_fields_we_only_report_do_not_fail_the_parse() -> None:
    run = Run.model_validate(
        {
            "id": "run_1",
            "status": "cancelled",
            "created_at": 1700000000.5,
            "metadata": {"n": 3, "nested": {"a": 1}},
            "usage": {"total_tokens": 7},
            "last_error": None,
        }
    )
    assert ASSISTANTS_DIALECT.is_terminal(run.status)
    assert run.usage is not None
    assert run.usage.total_tokens == 7

"""Property-based: every input at every door is accepted, or refused with a clear error,
and nothing accepted could bend a URL path."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import ID_PATTERN
from orchestrator.core.policies import check_policies
from orchestrator.service.targets import Problem, Target, read_targets
from orchestrator.store.admission import build_job

ids = st.one_of(
    st.text(max_size=140),
    st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True),
    st.sampled_from(["../x", "a/b", "%2e%2e", "run id", "run\x00", "thread_ok", "é"]),
)


@settings(max_examples=300, deadline=None)
@given(thread_id=ids, run_id=ids, deadline_s=st.floats(allow_nan=True, allow_infinity=True))
def test_a_job_is_accepted_safe_or_refused_by_field(
    thread_id: str, run_id: str, deadline_s: float
) -> None:
    refused: InvalidInput | None = None
    try:
        job = build_job(thread_id=thread_id, run_id=run_id, deadline_s=deadline_s)
    except InvalidInput as error:
        refused = error
    if refused is not None:
        assert refused.field in {"thread_id", "run_id", "deadline_s"}
        assert refused.rule
        return
    for value in (job.thread_id, job.run_id):
        assert value is not None
        assert ID_PATTERN.fullmatch(value)
        assert quote(value, safe="") == value  # nothing to encode: nothing to bend


lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.builds(lambda t, r: json.dumps({"thread_id": t, "run_id": r}), ids, ids),
        st.builds(lambda t, r: f"{t},{r}", ids, ids),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(header=st.sampled_from(["", "thread_id,run_id"]), body=lines)
def test_every_line_becomes_a_safe_target_or_a_numbered_problem(
    header: str, body: list[str]
) -> None:
    content = "".join(([header + "\n"] if header else []) + [line + "\n" for line in body])
    for item in read_targets(content.splitlines(keepends=True)):  # as a file reads them
        if isinstance(item, Target):
            # A line may name no thread (kinds without threads); one it names is safe.
            assert item.thread_id is None or ID_PATTERN.fullmatch(item.thread_id)
            assert ID_PATTERN.fullmatch(item.run_id)
        else:
            assert isinstance(item, Problem)
            assert item.where.startswith("line ")
            assert item.field
            assert item.rule


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_the_policy_checker_never_raises(text: str) -> None:
    for problem in check_policies(text):
        assert problem.field
        assert problem.message

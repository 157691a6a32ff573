"""Reading bulk inputs: every good line becomes a target, every bad one a numbered problem."""

from __future__ import annotations

import pytest

from orchestrator.core.durations import parse_duration_s
from orchestrator.core.models import Run
from orchestrator.providers.base import ASSISTANTS_DIALECT, ProviderError, RunPage
from orchestrator.service.discovery import discover
from orchestrator.service.targets import Problem, Target, read_targets
from tests.unit.fakes import START_S


def test_json_lines_with_bad_lines_reported_by_number() -> None:
    lines = [
        '{"thread_id": "thread_1", "run_id": "run_1", "reason": "stuck"}\n',
        "\n",
        "{broken\n",
        '["thread_1", "run_2"]\n',
        '{"thread_id": "a/b", "run_id": "run_3"}\n',
        '{"thread_id": "thread_1"}\n',
        '{"thread_id": "thread_2", "run_id": "run_9", "extra": 1}\n',
    ]
    got = list(read_targets(lines))
    assert got == [
        Target("thread_1", "run_1", "stuck", "line 1"),
        Problem("line 3", "line", "is not valid JSON"),
        Problem("line 4", "line", "must be a JSON object"),
        Problem("line 5", "thread_id", "must be 1 to 128 characters, each one of A-Z a-z 0-9 _ -"),
        Problem("line 6", "run_id", "Field required"),
        Target("thread_2", "run_9", "", "line 7"),
    ]


def test_csv_with_a_header_and_a_reason_column() -> None:
    lines = [
        "thread_id,run_id,reason\n",
        "thread_1,run_1,budget\n",
        "thread_1,run_2\n",
        "t,r,x,y\n",
    ]
    assert list(read_targets(lines)) == [
        Target("thread_1", "run_1", "budget", "line 2"),
        Target("thread_1", "run_2", "", "line 3"),
        Problem("line 4", "line", "has 4 fields, the header 3"),
    ]


def test_csv_without_the_needed_columns_is_one_problem() -> None:
    assert list(read_targets(["thread,run\n", "a,b\n"])) == [
        Problem("line 1", "header", "must name the column run_id")
    ]


def test_an_empty_input_has_no_targets() -> None:
    assert list(read_targets(["\n", "  \n"])) == []


def test_reading_is_lazy() -> None:
    def lines() -> object:
        yield '{"thread_id": "t", "run_id": "r1"}\n'
        raise AssertionError("read past what was asked for")

    stream = read_targets(lines())  # type: ignore[arg-type]
    assert next(stream) == Target("t", "r1", "", "line 1")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "5 minutes", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="unit s, m, h or d"):
        parse_duration_s(text)


class PagedProvider:
    """Runs of one thread, served 2 per page, newest first."""

    dialect = ASSISTANTS_DIALECT

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.calls: list[str | None] = []

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        self.calls.append(after)
        if thread_id == "thread_gone":
            raise ProviderError("No thread found with id 'thread_gone'.", http_status=404)
        start = 0 if after is None else [r.id for r in self.runs].index(after) + 1
        page = self.runs[start : start + 2]
        more = start + 2 < len(self.runs)
        return RunPage(runs=tuple(page), last_id=page[-1].id if page else None, has_more=more)


def test_discovery_follows_every_page_and_filters() -> None:
    provider = PagedProvider(
        [
            Run(id="run_a", status="in_progress", created_at=START_S - 10),
            Run(id="run_b", status="completed", created_at=START_S - 4000),
            Run(id="run_c", status="requires_action", created_at=START_S - 4000),
            Run(id="run_d", status="queued", created_at=START_S - 5000),
            Run(id="run_e", status="cancelling", created_at=START_S - 5000),
        ]
    )
    got = list(
        discover(provider, ["thread_1", "thread_gone", "bad/id"], older_than_s=3600, now_s=START_S)  # type: ignore[arg-type]
    )
    assert got[:2] == [
        Target("thread_1", "run_c", "", "thread thread_1"),
        Target("thread_1", "run_d", "", "thread thread_1"),
    ]
    assert [str(p) for p in got[2:]] == [
        "thread thread_gone: thread_id: listing failed: No thread found with id 'thread_gone'.",
        "thread 'bad/id': thread_id: must be 1 to 128 characters, each one of A-Z a-z 0-9 _ -",
    ]
    assert provider.calls == [None, "run_b", "run_d", None]


def test_a_byte_order_mark_and_a_bad_first_json_line_spoil_nothing() -> None:
    bom = ["\ufeffthread_id,run_id\n", "thread_1,run_1\n"]
    assert list(read_targets(bom)) == [Target("thread_1", "run_1", "", "line 2")]
    garbage_first = ["oops\n", '{"thread_id": "t", "run_id": "r"}\n']
    assert list(read_targets(garbage_first)) == [
        Problem("line 1", "line", "is not valid JSON"),
        Target("t", "r", "", "line 2"),
    ]


def test_lines_may_name_their_connection_and_omit_the_thread() -> None:
    jsonl = [
        '{"thread_id": "thread_a", "run_id": "run_a"}\n',
        '{"run_id": "resp_b", "provider": "responses"}\n',
        '{"run_id": "resp_c", "provider": "bad name"}\n',
    ]
    found = list(read_targets(jsonl))
    assert found[0] == Target("thread_a", "run_a", "", "line 1", None)
    assert found[1] == Target(None, "resp_b", "", "line 2", "responses")
    assert isinstance(found[2], Problem)
    assert found[2].field == "provider"
    csv_lines = ["provider,thread_id,run_id\n", "graphs,t1,r1\n", "responses,,resp_2\n"]
    assert list(read_targets(csv_lines)) == [
        Target("t1", "r1", "", "line 2", "graphs"),
        Target(None, "resp_2", "", "line 3", "responses"),
    ]

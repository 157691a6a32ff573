"""Policies: which rule judges a run, how old it is, and every problem named by line."""

from __future__ import annotations

import pytest

from orchestrator.core.models import Run
from orchestrator.core.policies import Action, PolicyError, check_policies, judge, load_policies
from tests.unit.fakes import START_S

GOOD = """
[[rule]]
name = "support"
action = "report"
match = { assistant_id = "asst_support", metadata = { team = "support" } }
max_age = { in_progress = "30m", queued = 300 }

[[rule]]
name = "default"
max_age = { in_progress = "2h", requires_action = "10m" }
"""


def a_run(status: str, **fields: object) -> Run:
    return Run.model_validate({"id": "run_1", "status": status, **fields})


def test_the_first_matching_rule_decides() -> None:
    policies = load_policies(GOOD)
    support = a_run(
        "in_progress",
        assistant_id="asst_support",
        metadata={"team": "support"},
        started_at=START_S - 1900,
    )
    verdict = judge(policies, support, "thread_1", START_S)
    assert verdict is not None
    assert (verdict.rule.name, verdict.rule.action, verdict.budget_s) == (
        "support",
        Action.REPORT,
        1800.0,
    )
    assert verdict.over
    other = a_run("in_progress", assistant_id="asst_x", started_at=START_S - 1900)
    verdict = judge(policies, other, "thread_1", START_S)
    assert verdict is not None
    assert verdict.rule.name == "default"
    assert not verdict.over


def test_queued_age_counts_from_creation_and_unbudgeted_statuses_are_ignored() -> None:
    policies = load_policies(GOOD)
    queued = a_run(
        "queued",
        assistant_id="asst_support",
        metadata={"team": "support"},
        created_at=START_S - 301,
    )
    verdict = judge(policies, queued, "thread_1", START_S)
    assert verdict is not None
    assert verdict.over
    assert judge(policies, a_run("queued", created_at=START_S - 10_000), "t", START_S) is None
    assert judge(policies, a_run("completed", created_at=START_S - 10_000), "t", START_S) is None


def test_thread_prefix_and_model_match() -> None:
    policies = load_policies(
        '[[rule]]\nname = "batch"\nmatch = { thread_prefix = "thread_batch", model = "m1" }\n'
        'max_age = { in_progress = "1m" }\n'
    )
    run = a_run("in_progress", model="m1", started_at=START_S - 61)
    assert judge(policies, run, "thread_batch_7", START_S) is not None
    assert judge(policies, run, "thread_live_7", START_S) is None


BROKEN = """\
[[rule]]
name = "ok"
max_age = { in_progress = "30m" }

[[rule]]
name = "bad action"
action = "explode"
max_age = { in_progress = "soon", cancelled = "1m" }

[[rule]]
name = "ok"
colour = "blue"
max_age = { queued = "5m" }
"""


def test_check_names_the_line_and_field_of_every_problem() -> None:
    problems = [str(p) for p in check_policies(BROKEN)]
    assert "line 6: rule[1].name: String should match pattern '^[A-Za-z0-9_.:-]{1,64}$'" in problems
    assert "line 7: rule[1].action: Input should be 'cancel' or 'report'" in problems
    assert any(p.startswith("line 8: rule[1].max_age.in_progress: must be") for p in problems)
    assert "line 12: rule[2].colour: Extra inputs are not permitted" in problems


def test_duplicate_names_are_a_problem() -> None:
    one = '[[rule]]\nname = "a"\nmax_age = { queued = 1 }\n'
    text = one + one
    assert [str(p) for p in check_policies(text)] == ["line 4: rule[1].name: 'a' is used twice"]


def test_toml_syntax_errors_carry_their_line() -> None:
    (problem,) = check_policies('[[rule]]\nname = "a"\nmax_age = { queued = }\n')
    assert problem.line == 3
    assert problem.field == "toml"


@pytest.mark.parametrize("text", ["", "rule = 3", "[[rule]]\nname = 'x'\n"])
def test_empty_or_shapeless_files_are_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        load_policies(text)


def test_a_rule_can_match_a_connection_and_budget_langgraph_statuses() -> None:
    policies = load_policies(
        '[[rule]]\nname = "graphs"\nmatch = { provider = "graphs" }\n'
        'max_age = { running = "10m", pending = "1m" }\n\n'
        '[[rule]]\nname = "default"\nmax_age = { in_progress = "1h" }\n'
    )
    pending = a_run("pending", created_at=START_S - 120)
    verdict = judge(policies, pending, "t", START_S, provider="graphs")
    assert verdict is not None
    assert (verdict.rule.name, verdict.over) == ("graphs", True)  # pending counts from creation
    assert judge(policies, pending, "t", START_S, provider="openai") is None  # no budget there
    running = a_run("running", created_at=START_S - 300)
    verdict = judge(policies, running, "t", START_S, provider="graphs")
    assert verdict is not None
    assert not verdict.over

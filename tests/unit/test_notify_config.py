"""The [[notify]] tables: good files load, bad ones name the line and the field; the
policy file with notify tables still loads as policies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import Result
from orchestrator.core.policies import PolicyError, check_policies
from orchestrator.notify.config import (
    PAGERDUTY_EVENTS_URL,
    EventType,
    Kind,
    check_notify,
    load_notify,
    missing_secrets,
    secret_of,
)

GOOD = """\
[[rule]]
name = "default"
max_age = { in_progress = "1h" }

[notifier]
allow_hosts = ["127.0.0.1", "Receiver.Internal"]
retry_delays = ["1s", "2s", 3]
give_up_after = "1h"

[[notify]]
name = "hooks"
kind = "webhook"
url = "https://hooks.example.com/runctl"
secret_env = "HOOK_SECRET"
events = ["run.outcome", "bulk.finished"]
results = ["timed_out", "error"]

[[notify]]
name = "pager"
kind = "pagerduty"
secret_env = "PD_ROUTING_KEY"

[[notify]]
name = "chat"
kind = "slack"
secret_env = "SLACK_URL"
"""


def test_a_good_file_loads() -> None:
    config = load_notify(GOOD)
    hooks, pager, chat = config.notify
    assert hooks.kind is Kind.WEBHOOK
    assert hooks.results == (Result.TIMED_OUT, Result.ERROR)
    assert hooks.hears == {EventType.RUN_OUTCOME, EventType.BULK_FINISHED}
    assert pager.hears == {EventType.ENFORCEMENT_ALERT}
    assert pager.target_url == PAGERDUTY_EVENTS_URL
    assert chat.hears == set(EventType)
    assert chat.target_url is None  # read from SLACK_URL at send time
    assert config.notifier.allow_hosts == ("127.0.0.1", "receiver.internal")
    assert config.notifier.schedule.delays_s == (1.0, 2.0, 3.0)
    assert config.notifier.schedule.give_up_after_s == 3600.0


def test_the_policies_still_load_from_the_same_file() -> None:
    assert check_policies(GOOD) == []


def test_the_sample_runctl_toml_is_valid_for_both() -> None:
    text = (Path(__file__).parents[2] / "runctl.toml").read_text()
    assert check_policies(text) == []
    assert check_notify(text) == []


BROKEN = """\
[notifier]
allow_hosts = ["127.0.0.1"]
retry_delays = ["soon"]

[[notify]]
name = "a"
kind = "webhook"
url = "https://hooks.example.com/"
secret_env = "HOOK_SECRET"
events = ["run.outcome", "run.started"]

[[notify]]
name = "b"
kind = "carrier-pigeon"
url = "https://x.example/"

[[notify]]
name = "c"
kind = "webhook"
url = "ftp://files.example/"
secret_env = "lower-case-is-fine but spaces are not"

[[notify]]
name = "d"
kind = "pagerduty"
secret_env = "PD"
events = ["run.outcome"]

[[notify]]
name = "a"
kind = "slack"
url = "https://hooks.slack.example/services/T/B/X"
"""


def test_every_problem_names_its_line_and_field() -> None:
    problems = [str(p) for p in check_notify(BROKEN)]
    assert problems[0].startswith("line 3: notifier.retry_delays.0: must be a number")
    assert any(p.startswith("line 10: notify[0].events.1: Input should be") for p in problems)
    assert any(p.startswith("line 14: notify[1].kind: Input should be") for p in problems)
    assert "line 20: notify[2].url: must be an absolute http(s) URL" in problems
    assert any(p.startswith("line 21: notify[2].secret_env: must be the NAME") for p in problems)
    assert "line 23: notify[3]: pagerduty hears only enforcement.escalated, enforcement.alert" in (
        problems
    )


def test_a_name_used_twice_is_reported_at_its_second_table() -> None:
    text = GOOD + '\n[[notify]]\nname = "hooks"\nkind = "slack"\nurl = "https://a.example/"\n'
    assert [str(p) for p in check_notify(text)] == [
        "line 28: notify[3].name: 'hooks' is used twice"
    ]


def test_kind_rules() -> None:
    webhook_without_secret = (
        '[[notify]]\nname = "a"\nkind = "webhook"\nurl = "https://a.example/"\n'
    )
    (problem,) = check_notify(webhook_without_secret)
    assert "needs url and secret_env" in str(problem)
    both = GOOD.replace(
        'secret_env = "SLACK_URL"', 'secret_env = "SLACK_URL"\nurl = "https://a.example/"'
    )
    assert any("not both" in str(p) for p in check_notify(both))
    with pytest.raises(PolicyError):
        load_notify(both)


def test_a_url_with_a_password_is_refused() -> None:
    text = GOOD.replace("https://hooks.example.com/runctl", "https://u:pw@hooks.example.com/")
    (problem,) = check_notify(text)
    assert "must not carry a user or password" in str(problem)


def test_secrets_come_from_the_environment_and_are_never_echoed() -> None:
    config = load_notify(GOOD)
    env = {"HOOK_SECRET": "whsec_c2VjcmV0", "PD_ROUTING_KEY": ""}
    assert missing_secrets(config, env) == [
        "notify pager: secret_env: PD_ROUTING_KEY is not set",
        "notify chat: secret_env: SLACK_URL is not set",
    ]
    assert secret_of(config.notify[0], env) == "whsec_c2VjcmV0"
    with pytest.raises(ConfigurationError, match="PD_ROUTING_KEY is not set"):
        secret_of(config.notify[1], env)


def test_the_commented_notify_example_in_runctl_toml_is_valid_once_uncommented() -> None:
    text = (Path(__file__).parents[2] / "runctl.toml").read_text()
    uncommented = re.sub(r"(?m)^# (?=\[|[a-z_]+ =)", "", text)
    config = load_notify(uncommented)
    assert [s.name for s in config.notify] == ["platform-hooks", "ops-channel", "on-call"]
    assert check_policies(uncommented) == []

"""Subscriptions: who hears about what, read from the `[[notify]]` tables of `runctl.toml`.

    [notifier]
    allow_hosts = ["127.0.0.1"]     # may be http, and may resolve to a private address

    [[notify]]
    name = "platform-hooks"
    kind = "webhook"                # webhook | slack | pagerduty
    url = "https://hooks.example.com/runctl"
    secret_env = "RUNCTL_HOOK_SECRET"   # the NAME of the variable holding whsec_...
    events = ["run.outcome", "bulk.finished"]
    results = ["timed_out", "error"]

The file is the policy file (`RUNCTL_POLICIES_FILE`): one file configures the service.
`check_notify` reports every problem with its line and field, as `runctl policy check` does.
Secrets are never in the file, only the names of the variables that hold them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.errors import ConfigurationError, InvalidInput
from orchestrator.core.models import ConnectionName, Result
from orchestrator.core.policies import (
    DurationS,
    PolicyError,
    PolicyProblem,
    parse_toml_model,
    table_line,
)
from orchestrator.notify.schedule import DEFAULT_SCHEDULE, DeliverySchedule

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class Kind(StrEnum):
    WEBHOOK = "webhook"  # Standard Webhooks: signed JSON to any receiver
    SLACK = "slack"  # a Slack incoming webhook: one compact message
    PAGERDUTY = "pagerduty"  # PagerDuty Events API v2: trigger, then resolve


class EventType(StrEnum):
    RUN_OUTCOME = "run.outcome"  # a job's one outcome was published
    BULK_FINISHED = "bulk.finished"  # every job of a bulk job has its outcome
    ENFORCEMENT_ESCALATED = "enforcement.escalated"  # a stuck cancel was re-issued
    ENFORCEMENT_ALERT = "enforcement.alert"  # still `cancelling` after every re-issue


PAGERDUTY_EVENTS = frozenset({EventType.ENFORCEMENT_ESCALATED, EventType.ENFORCEMENT_ALERT})

NonEmptyName = Annotated[str, Field(pattern=_NAME.pattern)]


class Subscription(BaseModel):
    """One `[[notify]]` table: a target, how to speak to it, and which events it hears.

    Filters narrow the events that carry the field: `results` and `providers` apply to
    `run.outcome`; `bulk_ids` to `run.outcome` and `bulk.finished` (an outcome outside a
    bulk job does not match a subscription that names bulk ids). Empty means "any".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: NonEmptyName
    kind: Kind
    url: str | None = None
    secret_env: str | None = None
    events: tuple[EventType, ...] = ()
    results: tuple[Result, ...] = ()
    providers: tuple[ConnectionName, ...] = ()  # connection names (runctl providers)
    bulk_ids: tuple[str, ...] = ()

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the NAME of an environment variable (A-Z, 0-9, _)")
        return value

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("must not carry a user or password: use secret_env")
        return value

    @model_validator(mode="after")
    def _kind_rules(self) -> Subscription:
        if self.kind is Kind.WEBHOOK and (self.url is None or self.secret_env is None):
            raise ValueError("a webhook needs url and secret_env (the signing secret)")
        if self.kind is Kind.SLACK and (self.url is None) == (self.secret_env is None):
            raise ValueError(
                "a slack target needs url or secret_env (naming the variable holding the "
                "incoming-webhook URL), not both"
            )
        if self.kind is Kind.PAGERDUTY:
            if self.secret_env is None:
                raise ValueError("a pagerduty target needs secret_env (the routing key)")
            if not set(self.events) <= PAGERDUTY_EVENTS:
                raise ValueError("pagerduty hears only enforcement.escalated, enforcement.alert")
        return self

    @property
    def hears(self) -> frozenset[EventType]:
        """The event types it is sent (the defaults when `events` is not given)."""
        if self.events:
            return frozenset(self.events)
        if self.kind is Kind.PAGERDUTY:
            return frozenset({EventType.ENFORCEMENT_ALERT})
        return frozenset(EventType)

    @property
    def target_url(self) -> str | None:
        """The URL from the file (a slack URL held in `secret_env` is read at send time)."""
        if self.kind is Kind.PAGERDUTY:
            return self.url or PAGERDUTY_EVENTS_URL
        return self.url


class NotifierOptions(BaseModel):
    """The `[notifier]` table: how the notifier delivers, for every subscription."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Hosts (as written in a URL) that may be plain http and may resolve to a private,
    # loopback or link-local address: for receivers on the same machine or network.
    allow_hosts: tuple[str, ...] = ()
    # The waits between attempts (the documented schedule unless given), and the age after
    # which a delivery is given up, whatever the schedule says.
    retry_delays: tuple[DurationS, ...] = DEFAULT_SCHEDULE.delays_s
    give_up_after: DurationS = DEFAULT_SCHEDULE.give_up_after_s
    timeout: DurationS = 10.0  # per request: connect, and the whole response
    max_response_bytes: int = Field(default=65_536, ge=1024)
    concurrency: int = Field(default=16, ge=1, le=256)  # requests in flight
    # A dead notifier's unsettled events are taken over after this; longer than a step can
    # last (4 x concurrency entries per stream, each request at most `timeout`).
    claim_idle: DurationS = 300.0
    lease: DurationS = 120.0  # a retry being attempted is taken over after this

    @field_validator("allow_hosts")
    @classmethod
    def _lower(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(h.strip("[]").lower() for h in hosts)

    @property
    def schedule(self) -> DeliverySchedule:
        return DeliverySchedule(delays_s=self.retry_delays, give_up_after_s=self.give_up_after)


class NotifyConfig(BaseModel):
    """The notification part of the file; other tables (`[[rule]]`) are the policies'."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    notifier: NotifierOptions = Field(default_factory=NotifierOptions)
    notify: tuple[Subscription, ...] = ()

    def subscription(self, name: str) -> Subscription | None:
        return next((s for s in self.notify if s.name == name), None)


def load_notify(text: str) -> NotifyConfig:
    """Parse the file's notification tables, or raise PolicyError listing every problem."""
    problems = check_notify(text)
    if problems:
        raise PolicyError(problems)
    return NotifyConfig.model_validate(tomllib.loads(text))


def check_notify(text: str) -> list[PolicyProblem]:
    """Every problem of the notification tables, each with its line and field."""
    config = parse_toml_model(text, NotifyConfig, _problem)
    if isinstance(config, list):
        return config
    names = [s.name for s in config.notify]
    return [
        PolicyProblem(
            table_line(text, "[[notify]]", i), f"notify[{i}].name", f"{name!r} is used twice"
        )
        for i, name in enumerate(names)
        if name in names[:i]
    ]


def missing_secrets(config: NotifyConfig, environ: Mapping[str, str]) -> list[str]:
    """One line per subscription whose secret variable is unset or empty (values unread)."""
    return [
        f"notify {s.name}: secret_env: {s.secret_env} is not set"
        for s in config.notify
        if s.secret_env is not None and not environ.get(s.secret_env)
    ]


def secret_of(subscription: Subscription, environ: Mapping[str, str] | None = None) -> str:
    """The subscription's secret from the environment; ConfigurationError (naming the
    variable, never the value) when it is unset."""
    env = os.environ if environ is None else environ
    name = subscription.secret_env
    value = env.get(name, "") if name else ""
    if not value:
        raise ConfigurationError(f"notify {subscription.name}: secret_env {name} is not set")
    return value


def _problem(text: str, error: Any) -> PolicyProblem:
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "notify" and loc[1].isdigit():
        index = int(loc[1])
        rest = [p for p in loc[2:] if not p.isdigit()]
        field = f"notify[{index}]" + "".join(f".{p}" for p in loc[2:])
        return PolicyProblem(_key_line(text, "[[notify]]", index, rest), field, message)
    if loc and loc[0] == "notifier":
        field = ".".join(loc)
        return PolicyProblem(_key_line(text, "[notifier]", 0, loc[1:2]), field, message)
    return PolicyProblem(None, ".".join(loc) or "file", message)


def _key_line(text: str, header: str, index: int, path: list[str]) -> int | None:
    """The line in that table that names the first key of `path` (else the header)."""
    start = table_line(text, header, index)
    if start is None or not path:
        return start
    lines = text.splitlines()
    for n in range(start, len(lines)):
        stripped = lines[n].strip()
        if stripped.startswith("["):
            break
        if re.match(rf"{re.escape(path[0])}\s*=", stripped):
            return n + 1
    return start


def read_notify(path: str) -> NotifyConfig:
    """The notification tables of the file at `path`; InvalidInput if it cannot be read,
    PolicyError listing every problem if it is not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("--config", f"cannot be read: {exc.strerror}", path) from None
    return load_notify(text)

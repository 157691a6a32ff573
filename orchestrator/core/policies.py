"""Timeout enforcement policies: named rules that say how long a run may stay in a status.

    [[rule]]
    name = "support-bots"
    action = "cancel"                      # or "report"
    match = { assistant_id = "asst_support", metadata = { team = "support" } }
    max_age = { in_progress = "30m", queued = "5m", requires_action = "10m" }

    [[rule]]
    name = "default"                       # no `match`: matches every run
    max_age = { in_progress = "2h" }

The first rule that matches a run decides. `check_policies` reports every problem with the
line and the field it is about.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from orchestrator.core.durations import parse_duration_s
from orchestrator.core.errors import RunctlError
from orchestrator.core.models import DEFAULT_CONNECTION, Run

# The statuses a rule may give a budget, in the providers' own words: the Assistants
# family's and Responses' (queued, in_progress, requires_action) and langgraph's (pending,
# running). A run in any other status is not judged.
M = TypeVar("M", bound=BaseModel)

QUEUED = frozenset({"queued", "pending"})  # waiting to start: its age counts from creation
WATCHABLE = frozenset({*QUEUED, "in_progress", "requires_action", "running"})
_RULE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Action(StrEnum):
    CANCEL = "cancel"  # queue a cancel job with reason `policy:<rule name>`
    REPORT = "report"  # record an event only


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30m, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_duration_s(value)
    else:
        raise ValueError("must be a duration such as 30m, or a number of seconds")
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


DurationS = Annotated[float, BeforeValidator(_duration)]


class Match(BaseModel):
    """Which runs a rule is about; every field given must match (none given: every run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str | None = None  # the connection's name
    assistant_id: str | None = None
    model: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    thread_prefix: str | None = None

    def matches(self, run: Run, thread_id: str, provider: str = DEFAULT_CONNECTION) -> bool:
        if self.provider is not None and provider != self.provider:
            return False
        if self.assistant_id is not None and run.assistant_id != self.assistant_id:
            return False
        if self.model is not None and run.model != self.model:
            return False
        if self.thread_prefix is not None and not thread_id.startswith(self.thread_prefix):
            return False
        metadata = run.metadata or {}
        return all(str(metadata.get(k)) == v for k, v in self.metadata.items())


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_RULE_NAME.pattern)
    action: Action = Action.CANCEL
    match: Match = Field(default_factory=Match)
    max_age: dict[str, DurationS] = Field(min_length=1)

    @field_validator("max_age")
    @classmethod
    def _only_watchable(cls, max_age: dict[str, float]) -> dict[str, float]:
        for status in max_age:
            if status not in WATCHABLE:
                raise ValueError(
                    f"{status} cannot have a budget; only {', '.join(sorted(WATCHABLE))}"
                )
        return max_age

    def budget_s(self, status: str) -> float | None:
        return self.max_age.get(status) if status in WATCHABLE else None


class PolicySet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: list[Rule] = Field(min_length=1)
    # The notifier's tables share the file; `runctl notify check` validates them.
    notifier: dict[str, Any] = Field(default_factory=dict)
    notify: list[dict[str, Any]] = Field(default_factory=list)

    def first_match(
        self, run: Run, thread_id: str, provider: str = DEFAULT_CONNECTION
    ) -> Rule | None:
        return next((r for r in self.rule if r.match.matches(run, thread_id, provider)), None)


@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}: {self.field}: {self.message}"


class PolicyError(RunctlError):
    """The policy file is not valid: fix each problem listed (line and field)."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class Verdict:
    """What a policy says of a run now: which rule, its budget, how far over it is."""

    rule: Rule
    budget_s: float
    age_s: float

    @property
    def over(self) -> bool:
        return self.age_s > self.budget_s


def judge(
    policies: PolicySet,
    run: Run,
    thread_id: str,
    now_s: float,
    *,
    provider: str = DEFAULT_CONNECTION,
) -> Verdict | None:
    """The verdict for a run, or None when no rule gives its status a budget.

    A run's age in `queued` counts from `created_at`; in `in_progress` and
    `requires_action` from `started_at` (the protocol gives no time of the last change).
    """
    if run.status not in WATCHABLE:
        return None
    rule = policies.first_match(run, thread_id, provider)
    budget = None if rule is None else rule.budget_s(run.status)
    if rule is None or budget is None:
        return None
    since = run.created_at if run.status in QUEUED else run.started_at
    since = since if since is not None else run.created_at
    if since is None:
        return None
    return Verdict(rule=rule, budget_s=budget, age_s=max(0.0, now_s - since))


def load_policies(text: str) -> PolicySet:
    """Parse a policy file, or raise PolicyError listing every problem."""
    problems = check_policies(text)
    if problems:
        raise PolicyError(problems)
    return PolicySet.model_validate(_rules_only(tomllib.loads(text)))


def parse_toml_model(
    text: str,
    model: type[M],
    problem: Callable[[str, Any], PolicyProblem],
    *,
    select: Callable[[dict[str, Any]], dict[str, Any]] = lambda data: data,
) -> M | list[PolicyProblem]:
    """`text` (a TOML file) as `model`, or its problems: a syntax error with its line, or
    each validation error as `problem(text, error)` places it. `select` picks the tables
    `model` reads (runctl.toml holds more than one concern)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        return [PolicyProblem(int(line.group(1)) if line else None, "toml", str(exc))]
    try:
        return model.model_validate(select(data))
    except ValidationError as exc:
        return [problem(text, error) for error in exc.errors()]


def table_line(text: str, header: str, index: int) -> int | None:
    """The line of the `index`-th `header` (e.g. `[[rule]]`), 1-based, if there is one."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == header]
    return found[index] if index < len(found) else None


def check_policies(text: str) -> list[PolicyProblem]:
    """Every problem of a policy file, each with its line (when it can be found) and field."""
    policies = parse_toml_model(text, PolicySet, _problem, select=_rules_only)
    if isinstance(policies, list):
        return policies
    names = [r.name for r in policies.rule]
    return [
        PolicyProblem(_rule_line(text, i), f"rule[{i}].name", f"{name!r} is used twice")
        for i, name in enumerate(names)
        if name in names[:i]
    ]


def _rules_only(data: dict[str, Any]) -> dict[str, Any]:
    """runctl.toml also holds the connections (`[providers.*]`): not the policies' business."""
    return {k: v for k, v in data.items() if k != "providers"}


def _problem(text: str, error: Any) -> PolicyProblem:
    loc = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == "rule" and loc[1].isdigit():
        index = int(loc[1])
        field = f"rule[{index}]" + "".join(f".{p}" for p in loc[2:])
        return PolicyProblem(_field_line(text, index, loc[2:]), field, message)
    return PolicyProblem(None, ".".join(loc) or "file", message)


def _rule_line(text: str, index: int) -> int | None:
    return table_line(text, "[[rule]]", index)


def _field_line(text: str, index: int, path: list[str]) -> int | None:
    """The line in rule `index` that names the first key of `path` (else the header)."""
    start = _rule_line(text, index)
    if start is None or not path:
        return start
    lines = text.splitlines()
    for n in range(start, len(lines)):
        stripped = lines[n].strip()
        if stripped == "[[rule]]":
            break
        if re.match(rf"(\[rule\.)?{re.escape(path[0])}\b", stripped):
            return n + 1
    return start

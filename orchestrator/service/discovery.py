"""The runs of listed threads: every page, through the caller's rate limit and retries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial

import redis

from orchestrator.core.connections import Connection
from orchestrator.core.durations import parse_duration_s
from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import Run
from orchestrator.core.retrying import RetryPolicy
from orchestrator.core.settings import Settings
from orchestrator.providers.base import (
    ASSISTANTS_DIALECT,
    BuildOptions,
    ProviderError,
    RunPage,
    RunsProvider,
)
from orchestrator.providers.registry import make_provider, spec_of
from orchestrator.service.targets import Problem, Target, check_target
from orchestrator.store.ratelimit import limited_call, rate_limiter

DISCOVERY_DEADLINE_S = 60.0  # per listing request, retries included

DEFAULT_STATUSES = ASSISTANTS_DIALECT.live
"""What `bulk-cancel --thread` looks for when no --status is given (Assistants kinds)."""


def thread_runs(
    provider: RunsProvider,
    thread_id: str,
    *,
    call: Callable[[Callable[[], RunPage]], RunPage] = lambda fn: fn(),
) -> Iterator[Run]:
    """Every run of a thread, page after page; `call` wraps each request."""
    after: str | None = None
    while True:
        page = call(partial(provider.list_runs, thread_id, after=after))
        yield from page.runs
        if not page.has_more or page.last_id is None:
            return
        after = page.last_id


def discover(
    provider: RunsProvider,
    thread_ids: Iterable[str],
    *,
    statuses: frozenset[str] | None = None,
    older_than_s: float | None = None,
    now_s: float,
    call: Callable[[Callable[[], RunPage]], RunPage] = lambda fn: fn(),
) -> Iterator[Target | Problem]:
    """The runs of each thread (every page) whose status is in `statuses` (by default the
    dialect's live ones) and, with
    `older_than_s`, created at least that long before `now_s`. `call` wraps each request
    (the CLI passes the rate limiter and the retry policy)."""
    for thread_id in thread_ids:
        checked = check_target({"thread_id": thread_id, "run_id": "run_placeholder"}, "--thread")
        if isinstance(checked, Problem):
            yield Problem(f"thread {thread_id!r}", "thread_id", checked.rule)
            continue
        try:
            yield from _thread_targets(
                provider, thread_id, statuses or provider.dialect.live, older_than_s, now_s, call
            )
        except ProviderError as error:
            yield Problem(f"thread {thread_id}", "thread_id", f"listing failed: {error.message}")


def _thread_targets(
    provider: RunsProvider,
    thread_id: str,
    statuses: frozenset[str],
    older_than_s: float | None,
    now_s: float,
    call: Callable[[Callable[[], RunPage]], RunPage],
) -> Iterator[Target]:
    for run in thread_runs(provider, thread_id, call=call):
        old_enough = older_than_s is None or (
            run.created_at is not None and run.created_at <= now_s - older_than_s
        )
        if run.status in statuses and old_enough:
            yield Target(thread_id, run.id, "", f"thread {thread_id}")


def listed_targets(
    settings: Settings,
    connection: Connection,
    thread_ids: list[str],
    *,
    status: str | None,
    older_than: str | None,
    client: redis.Redis,
) -> Iterator[Target | Problem]:
    """The runs to cancel in `thread_ids` on `connection`, through the connection's rate
    limit and the retry policy: `status` is a comma-separated list (default: the kind's
    live statuses), `older_than` a duration (30m). `client` holds the rate limit. Raises
    InvalidInput at once (before any request) for a kind that cannot list, an empty status
    list or a bad duration. The provider client is closed when the iterator ends."""
    spec = spec_of(connection.kind)
    if not spec.can_list:
        raise InvalidInput(
            "provider", f"{spec.kind} cannot list runs: give a file of run ids instead"
        )
    wanted = status or ",".join(sorted(spec.dialect.live))
    statuses = frozenset(s.strip() for s in wanted.split(",") if s.strip())
    if not statuses:
        raise InvalidInput("status", "must name at least one status")
    try:
        older_than_s = None if older_than is None else parse_duration_s(older_than)
    except ValueError as exc:
        raise InvalidInput("older_than", str(exc), older_than) from None
    options = BuildOptions(4, settings.read_timeout_s, settings.connect_timeout_s)
    provider = make_provider(connection, options)
    limiter = rate_limiter(client, settings, connection)

    def call(fn: Callable[[], RunPage]) -> RunPage:
        return limited_call(
            limiter, fn, budget_s=DISCOVERY_DEADLINE_S, policy=RetryPolicy(),
            clock=time.time, sleep=time.sleep,
        )  # fmt: skip

    found = discover(
        provider, thread_ids, statuses=statuses, older_than_s=older_than_s, now_s=time.time(),
        call=call,
    )  # fmt: skip
    return _closing(provider, found)


def _closing(
    provider: RunsProvider, items: Iterator[Target | Problem]
) -> Iterator[Target | Problem]:
    try:
        yield from items
    finally:
        provider.close()

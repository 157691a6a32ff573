"""The runs of listed threads: every page, through the caller's rate limit and retries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial

from orchestrator.core.models import Run
from orchestrator.providers.base import ASSISTANTS_DIALECT, ProviderError, RunPage, RunsProvider
from orchestrator.service.targets import Problem, Target, check_target

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

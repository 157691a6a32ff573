"""The Python API for producers: queue cancel jobs and wait for their outcomes.

producer = Producer(get_settings(), queue)
submitted = producer.cancel("thread_abc", "run_abc", reason="stuck")
outcome = producer.wait(submitted.job_id, timeout_s=60)

It holds no Celery: jobs go to a `JobQueue` (`workers.fastqueue.FastCeleryQueue` in production),
so that every door (the CLI, the tasks, an HTTP API) shares the same admission rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol

import redis

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import CancelJob, Outcome, new_job_id
from orchestrator.core.settings import Settings
from orchestrator.service.bulk import enqueue
from orchestrator.service.connections import Connections, load_connections
from orchestrator.service.targets import Problem, Target
from orchestrator.store.admission import Submitted, build_job, submit_many
from orchestrator.store.bulk import BulkStore, new_bulk_id
from orchestrator.store.client import redis_client
from orchestrator.store.outcomes import wait_for_outcome
from orchestrator.store.tracking import Tracker


class JobQueue(Protocol):
    """Where admitted jobs go: one call per batch, all of it or an exception."""

    def send(self, jobs: Sequence[CancelJob]) -> None: ...

    def close(self) -> None: ...


class Producer:
    """Validates and queues jobs. Holds no credential: workers read the key themselves.

    Every call takes an optional `provider`, the name of a connection in runctl.toml
    (default: `openai`, or the only connection); an unknown name, or an id that breaks the
    connection's kind's rules, raises InvalidInput before anything is queued.
    """

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        *,
        client: redis.Redis | None = None,
        connections: Connections | None = None,
    ) -> None:
        self._settings = settings
        self.queue = queue
        self.connections = connections or load_connections(settings)
        # An operator's command should fail fast, not ride out a Redis restart like a worker.
        self._owns_redis = client is None
        self._redis = client or redis_client(settings, max_connections=8, retries=2)
        self.bulks = BulkStore(self._redis, keep_s=settings.outcome_keep_s)

    def cancel(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        provider: str | None = None,
        force: bool = False,
        **fields: Any,
    ) -> Submitted:
        """Queue a cancel of one run (`thread_id` None for a kind without threads); raises
        InvalidInput naming the bad field, and queues nothing. `force`: replace the run's job
        in flight (see `cancel_many`)."""
        name = self.connections.resolve(provider).name
        self.connections.check_ids(name, thread_id, run_id)
        fields.setdefault("deadline_s", self._settings.default_deadline_s)
        job = build_job(provider=name, thread_id=thread_id, run_id=run_id, **fields)
        return self.cancel_many([job], force=force)[0]

    def cancel_many(self, jobs: Sequence[CancelJob], *, force: bool = False) -> list[Submitted]:
        """Queue many jobs in a few round trips; runs already in flight keep their job,
        unless `force`: then the new job replaces it (for a job lost before it could
        publish), and the old one, if it ever runs, publishes `skipped` and sends nothing."""
        return submit_many(
            jobs,
            force=force,
            client=self._redis,
            send=self.queue.send,
            inflight_ttl_s=self._settings.inflight_ttl_s,
            max_deadline_s=self._settings.max_deadline_s,
            accepted_keep_s=self._settings.outcome_keep_s,
        )

    def bulk_cancel(
        self,
        targets: Iterable[Target | Problem],
        *,
        on_problem: Callable[[Problem], None],
        reason: str = "",
        requested_by: str = "",
        source: str = "",
        deadline_s: float | None = None,
        rate_limit_rps: float | None = None,
        on_start: Callable[[str], None] = lambda _: None,
        on_batch: Callable[[], None] = lambda: None,
        provider: str | None = None,
        force: bool = False,
    ) -> str:
        """Start a bulk job over `targets` (streamed) and return its id once all are queued.

        `on_start` gets the id before the first target is read, so that an operator can
        follow or abort a long enqueue; `on_batch` is called after each batch of targets is
        queued. A bad line or thread goes to `on_problem` and is counted; it never stops
        the others. A target without a `provider` goes through `provider` (the default
        connection when None); one whose ids break its kind's rules is a problem.
        """
        default = self.connections.resolve(provider).name
        deadline = deadline_s or self._settings.default_deadline_s
        bulk_id = new_bulk_id()
        # What every job of the bulk shares is checked once, here: a bad deadline or reason
        # is refused before anything is queued.
        shared = build_job(
            thread_id="t", run_id="r", deadline_s=deadline, reason=reason,
            requested_by=requested_by, bulk_id=bulk_id,
        )  # fmt: skip
        self.bulks.create(
            bulk_id, source=source, requested_by=requested_by, rate_limit_rps=rate_limit_rps
        )
        on_start(bulk_id)

        def make_job(target: Target) -> CancelJob:
            # Every field was checked already: the ids by the kind's rules in `_checked`
            # (each at least as strict as SafeId), the reason where the target was read,
            # the rest in `shared`. Validating 100,000 jobs again cost a tenth of the time.
            return CancelJob.model_construct(
                provider=target.provider or default,
                job_id=new_job_id(),
                thread_id=target.thread_id,
                run_id=target.run_id,
                reason=target.reason or shared.reason,
                requested_by=shared.requested_by,
                deadline_s=shared.deadline_s,
                bulk_id=bulk_id,
            )

        enqueue(
            bulk_id,
            self._checked(targets, default),
            store=self.bulks,
            make_job=make_job,
            submit_many=partial(self.cancel_many, force=force),
            on_problem=on_problem,
            on_batch=on_batch,
        )
        return bulk_id

    def checked(
        self, targets: Iterable[Target | Problem], *, provider: str | None = None
    ) -> Iterator[Target | Problem]:
        """`targets` as `bulk_cancel` will take them (each naming its connection), or a
        problem each: to refuse a whole input before anything is queued (the HTTP API)."""
        return self._checked(targets, self.connections.resolve(provider).name)

    def _checked(
        self, targets: Iterable[Target | Problem], default: str
    ) -> Iterator[Target | Problem]:
        """Each target with its connection named, or a problem when its connection is
        unknown or its ids break the kind's rules."""
        for target in targets:
            if isinstance(target, Problem):
                yield target
                continue
            name = target.provider or default
            try:
                self.connections.check_ids(name, target.thread_id, target.run_id)
            except InvalidInput as exc:
                yield Problem(target.source or "target", exc.field, exc.rule)
                continue
            yield Target(target.thread_id, target.run_id, target.reason, target.source, name)

    def track(self, thread_id: str | None, run_id: str, *, provider: str | None = None) -> bool:
        """Have the enforcer watch a run, from its creation on; False if already tracked."""
        name = self.connections.resolve(provider).name
        self.connections.check_ids(name, thread_id, run_id)
        return Tracker(self._redis).track(thread_id, run_id, now_s=time.time(), provider=name)

    def track_thread(self, thread_id: str, *, provider: str | None = None) -> bool:
        """Have the enforcer list this thread's runs on every pass (kinds that can list)."""
        connection = self.connections.resolve(provider)
        spec = self.connections.spec(connection.name)
        if not spec.can_list:
            raise InvalidInput("provider", f"{spec.kind} cannot list runs: track each run")
        self.connections.check_ids(connection.name, thread_id, spec.run_id.example)
        return Tracker(self._redis).watch_thread(thread_id, provider=connection.name)

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    def wait(self, job_id: str, *, timeout_s: float) -> Outcome | None:
        return wait_for_outcome(self._redis, job_id, timeout_s=timeout_s)

    def close(self) -> None:
        self.queue.close()
        if self._owns_redis:
            self._redis.close()

"""Starting a bulk job: stream its targets into queued jobs, batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from orchestrator.core.models import CancelJob
from orchestrator.service.targets import Problem, Target
from orchestrator.store.admission import Submitted
from orchestrator.store.bulk import BulkStatus, BulkStore, ElsewhereRow

BATCH_SIZE = 500


def enqueue(
    bulk_id: str,
    targets: Iterable[Target | Problem],
    *,
    store: BulkStore,
    make_job: Callable[[Target], CancelJob],
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
    on_problem: Callable[[Problem], None],
    on_batch: Callable[[], None] = lambda: None,
    batch_size: int = BATCH_SIZE,
) -> BulkStatus | None:
    """Stream `targets` into queued jobs, `batch_size` at a time: a few round trips per
    batch, never one per run, and never the whole input in memory. Stops early if the bulk
    job is aborted meanwhile. `on_batch` is called after each batch is queued (for
    progress), and it and `on_problem` are called in the caller's thread. Returns the bulk
    job's status at the end.

    One batch is sent by a sender thread while this thread reads the next: reading and
    checking lines is Python's work, a batch's round trips are mostly Redis's, so the two
    overlap (a quarter off a 100,000-line file). Batches are still sent one at a time and
    in order."""
    stream = iter(targets)
    failure = ""
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-send") as sender:
            sending: Future[None] | None = None
            while batch := list(islice(stream, batch_size)):
                if sending is not None:
                    sending.result()
                    on_batch()
                    sending = None
                if store.status(bulk_id) is BulkStatus.ABORTED:
                    break
                for problem in (p for p in batch if isinstance(p, Problem)):
                    on_problem(problem)
                sending = sender.submit(
                    _enqueue_batch, bulk_id, batch, store, make_job, submit_many
                )
            if sending is not None:
                sending.result()
                on_batch()
    except BaseException as exc:
        # Whatever stopped it, the bulk job must not stay `enqueueing` (nobody could wait
        # for it): what was queued runs, and the record says why the rest was not.
        failure = f"enqueueing stopped: {type(exc).__name__}"
        raise
    finally:
        store.enqueued(bulk_id, failure=failure)
    return store.status(bulk_id)


def _enqueue_batch(
    bulk_id: str,
    batch: list[Target | Problem],
    store: BulkStore,
    make_job: Callable[[Target], CancelJob],
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]],
) -> None:
    good = [t for t in batch if isinstance(t, Target)]
    fresh = [
        t
        for t, new in zip(
            good,
            store.first_sightings(
                bulk_id, [(t.provider or "", t.thread_id or "-", t.run_id) for t in good]
            ),
            strict=True,
        )
        if new
    ]
    # Counted before they are sent, so that `done` never runs ahead of `queued`.
    store.add(bulk_id, queued=len(fresh))
    try:
        submitted = submit_many([make_job(t) for t in fresh])
    except BaseException:
        store.add(bulk_id, queued=-len(fresh))
        raise
    taken = [
        ElsewhereRow(
            provider=t.provider or "", thread_id=t.thread_id, run_id=t.run_id, job_id=s.job_id
        )
        for t, s in zip(fresh, submitted, strict=True)
        if s.duplicate
    ]
    store.add(
        bulk_id,
        elsewhere=taken,
        seen=len(good),
        queued=-len(taken),
        repeated=len(good) - len(fresh),
        in_flight_elsewhere=len(taken),
        invalid=len(batch) - len(good),
    )

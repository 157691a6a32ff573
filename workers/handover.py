"""Handing jobs back when the worker is asked to stop (SIGTERM: every deploy).

Celery's warm shutdown stops taking messages and then waits for every job in flight, for
as long as they take. Here, jobs still running `RUNCTL_SHUTDOWN_GRACE_S` after the signal
are interrupted (`JobInterrupted` raised where each one waits: a sleep, an HTTP read, a
Redis reply); the task hands its message back to the head of its queue
(`Reject(requeue=True)`, see workers/transport.py `QoS.reject`), and another worker
resumes it from its saved progress (a cancel already accepted is not sent again). Jobs
that finish within the grace publish as usual. The worker then exits, and its lease ends.

Interrupting a job between its outcome's publication and its return is harmless: the
message comes back, and the redelivery finds the outcome and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from orchestrator.core.errors import JobInterrupted

log = logging.getLogger(__name__)


class HandOver:
    """The jobs running now in this process, and interrupting them after the grace.

    Only the gevent pool is supported (`runctl worker`): each job is a greenlet. Without
    gevent, `begin` does nothing and shutdown waits for the jobs, as Celery does.
    """

    def __init__(self, *, grace_s: float) -> None:
        self.grace_s = grace_s
        self._running: set[Any] = set()
        self._interrupted: set[Any] = set()
        self.give_back: Callable[[], int] | None = None  # every held message, at once
        self.begun = False

    @contextmanager
    def job(self) -> Iterator[None]:
        """Around one job's work: while inside, the job may be interrupted."""
        current = _current_greenlet()
        if current is not None:
            self._running.add(current)
        try:
            yield
        finally:
            self._running.discard(current)
            if current in self._interrupted:
                # The interrupt is delivered asynchronously (at the greenlet's next switch):
                # one sent just as the job finished must land here, not in its ack.
                self._interrupted.discard(current)
                _absorb_pending_interrupt()

    def running(self) -> int:
        """How many jobs are running in this process now."""
        return len(self._running)

    def begin(self) -> None:
        """The worker was asked to stop: interrupt what still runs after the grace.
        Called from a signal handler, so it only schedules."""
        if self.begun or _current_greenlet() is None:
            return
        self.begun = True
        import gevent

        log.warning("shutting down: jobs still running in %g s are handed back", self.grace_s)
        gevent.spawn_later(self.grace_s, self.interrupt)

    def interrupt(self) -> int:
        """Raise `JobInterrupted` in every job running now; how many there were."""
        import gevent

        running = list(self._running)
        log.warning("grace over: handing back %d job(s)", len(running))
        if self.give_back is not None:
            # All at once, before the jobs are interrupted (each interrupted job's own
            # hand-back, a Reject, then finds its message gone and does nothing, however
            # long the process takes to get through a thousand of them).
            try:
                moved = self.give_back()
                log.warning("handed %d message(s) back to the head of the queue", moved)
            except Exception:  # each task still hands its own back
                log.exception("could not hand the messages back at once")
        running = list(self._running)  # without those that finished meanwhile
        self._interrupted.update(running)
        for greenlet in running:
            gevent.kill(greenlet, JobInterrupted)  # schedules the raise; never blocks
        return len(running)


def _absorb_pending_interrupt() -> None:
    """Yield once, so that a `JobInterrupted` already scheduled for this greenlet is raised
    (and dropped) here. gevent runs scheduled callbacks in order: the kill comes first."""
    import gevent

    with suppress(JobInterrupted):
        gevent.sleep(0)


def _current_greenlet() -> Any:
    """The running greenlet under gevent's patching, else None (threads, tests)."""
    import sys

    if "gevent" not in sys.modules:
        return None
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return None
    import gevent

    return gevent.getcurrent()

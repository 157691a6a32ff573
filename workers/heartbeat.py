"""The worker's heartbeat: renews its lease (orchestrator/store/leases.py) from an OS thread.

Under the gevent pool, `threading.Thread` makes a greenlet, which a busy hub (one job
parsing a large reply, a CPU-starved process) would starve: the lease would lapse while
the worker is alive, and its jobs would go to another worker. The heartbeat therefore runs
in a native thread (gevent's saved `_thread.start_new_thread`), which the interpreter
schedules on its own (the GIL is handed over every few milliseconds). It uses a Redis
client of its own, created in that thread (gevent sockets belong to the thread that made
them). Only a stopped process (SIGSTOP, a frozen VM) or one unable to reach Redis misses
its renewals; a worker is given RENEWALS_PER_LEASE - 1 missed renewals before its lease ends.
"""

from __future__ import annotations

import _thread
import logging
import sys
from collections.abc import Callable
from typing import Any

import redis

from orchestrator.store.leases import Leases, WorkerCard

log = logging.getLogger(__name__)

STOP_JOIN_S = 10.0  # how long `stop` waits for the thread's last Redis call to end


def _native() -> tuple[Callable[..., Any], Callable[[], Any]]:
    """`start_new_thread` and `allocate_lock` of the OS, even after gevent's patching."""
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            return (
                monkey.get_original("_thread", "start_new_thread"),
                monkey.get_original("_thread", "allocate_lock"),
            )
    return _thread.start_new_thread, _thread.allocate_lock


class Heartbeat:
    """Renews `worker_id`'s lease every `every_s` in an OS thread, until `stop`."""

    def __init__(
        self,
        make_leases: Callable[[], Leases],
        worker_id: str,
        *,
        every_s: float,
        card: WorkerCard | None = None,
    ) -> None:
        self._make_leases = make_leases
        self.worker_id = worker_id
        self._card = card
        self._every_s = every_s
        start, allocate = _native()
        self._start_thread = start
        self._stop = allocate()
        self._stop.acquire()  # held until `stop`: the thread waits on it between renewals
        self._done = allocate()
        self._done.acquire()  # released by the thread as it ends

    def start(self) -> None:
        self._start_thread(self._run, ())

    def stop(self) -> None:
        """End the thread (waits for its current renewal, up to STOP_JOIN_S)."""
        self._stop.release()
        if not self._done.acquire(True, STOP_JOIN_S):
            log.warning("the heartbeat thread did not end within %g s", STOP_JOIN_S)

    def _run(self) -> None:
        leases = self._make_leases()  # its client connects from this thread
        missed = 0
        try:
            while True:
                try:
                    leases.renew(self.worker_id, self._card)
                    if missed:
                        log.warning("lease renewed after %d missed renewal(s)", missed)
                    missed = 0
                except redis.RedisError as exc:
                    missed += 1
                    log.warning("could not renew the worker's lease (%s)", type(exc).__name__)
                if self._stop.acquire(True, self._every_s):
                    return
        finally:
            leases.close()
            self._done.release()

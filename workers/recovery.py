"""Returning the jobs of dead workers to the queue.

Three ways a message can be stranded, and what brings each back, fastest first:
- its worker's lease lapsed (killed, or stopped for longer than RUNCTL_WORKER_LEASE_S):
  `QoS.return_lapsed` (workers/transport.py) puts back every message it held, checking the
  lease in the same script that moves each one;
- its worker died between taking it and recording it (a fetch list): `FetchReclaimer`;
- Redis says this live worker holds it, but the worker does not (a failover lost the
  primary's last writes, or a broken connection's hand-back failed): `Orphans`;
- anything else held past the visibility timeout (the last resort): kombu's own scan.

kombu runs its scan only when a poll returns no event at all, which a consuming worker
seldom sees (an idle fetch's own timeout counts as an event), so each worker runs all three
itself, on a timer. kombu's Redis mutex makes concurrent scans safe; the lease and fetch-list
returns are atomic scripts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery

from orchestrator.core.settings import Settings
from orchestrator.store.leases import Leases
from workers.transport import WORKER_ID_OPTION, FetchReclaimer, Orphans

log = logging.getLogger(__name__)


def sweep_once(
    app: Celery, reclaimer: FetchReclaimer, leases: Leases, orphans: Orphans | None = None
) -> None:
    """Put back every message whose holder's lease lapsed, every message a dead worker's
    fetch stranded, every message recorded as this worker's that it does not hold, and
    every message whose visibility timeout has passed; unlist workers long dead."""
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # our transport's channel, typed loosely
        channel.qos.return_lapsed(leases)
        if orphans is not None:
            orphans.sweep(channel.qos)
        channel.qos.restore_visible(num=None, interval=1)
    reclaimer.sweep(now_s=time.time())
    leases.forget_departed()  # killed workers' cards


def sweep_every_s(settings: Settings) -> float:
    """Often enough that a dead worker's jobs are back within lease + a third of it."""
    return min(settings.restore_interval_s, settings.worker_lease_s / 3)


def start_sweeper(app: Celery, client: redis.Redis, settings: Settings) -> threading.Event:
    """Sweep every `sweep_every_s` in a daemon thread (a greenlet under gevent: a starved
    sweep only delays others' jobs, never loses this worker's); set the event to stop."""
    stop = threading.Event()
    reclaimer = FetchReclaimer(client)
    leases = Leases(client, lease_s=settings.worker_lease_s)
    worker_id = app.conf.broker_transport_options.get(WORKER_ID_OPTION)
    orphans = Orphans(client, worker_id) if worker_id else None
    interval_s = sweep_every_s(settings)

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                sweep_once(app, reclaimer, leases, orphans)
            except Exception:  # a Redis blip must not end the sweeper; next tick retries
                log.warning("restore sweep failed; retrying next tick", exc_info=True)

    threading.Thread(target=loop, name="runctl-restore-sweeper", daemon=True).start()
    return stop


def give_back_held(app: Celery, worker_id: str) -> int:
    """Put back every message this worker holds, at once (see workers/handover.py)."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return int(channel.qos.give_back_all(worker_id))

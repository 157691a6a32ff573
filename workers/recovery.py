"""Returning the jobs of dead workers to the queue.

A message a worker has taken but not acknowledged sits in kombu's `unacked` hash; after the
visibility timeout it may be put back on its queue. kombu only scans for such messages when
a poll returns no event at all, which a consuming worker seldom sees (an idle fetch's own
timeout counts as an event; only a worker whose slots are all taken polls with nothing
outstanding), so a dead worker's jobs could wait until some worker restarts. Each worker
therefore runs this sweep itself, on a timer. kombu's Redis mutex makes concurrent sweeps
from many workers safe.

The same sweep puts back messages stranded in a dead worker's fetch list
(`workers.transport`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import Celery

from workers.transport import FetchReclaimer

log = logging.getLogger(__name__)


def sweep_once(app: Celery, reclaimer: FetchReclaimer) -> None:
    """Put back every message whose visibility timeout has passed, and every message a dead
    worker's fetch stranded."""
    with app.connection_for_read() as connection:
        channel: Any = connection.default_channel  # kombu's Redis channel, typed loosely
        channel.qos.restore_visible(num=None, interval=1)
    reclaimer.sweep(now_s=time.time())


def start_sweeper(app: Celery, client: redis.Redis, *, interval_s: float) -> threading.Event:
    """Sweep every `interval_s` in a daemon thread (a greenlet under gevent); set to stop."""
    stop = threading.Event()
    reclaimer = FetchReclaimer(client)

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                sweep_once(app, reclaimer)
            except Exception:  # a Redis blip must not end the sweeper; next tick retries
                log.warning("restore sweep failed; retrying next tick", exc_info=True)

    threading.Thread(target=loop, name="runctl-restore-sweeper", daemon=True).start()
    return stop

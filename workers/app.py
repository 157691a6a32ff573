"""The Celery application factory: configuration only. Tasks live in `workers.tasks`, and
the worker's entry point (`celery -A workers.main`) is the one place that builds an app
from the environment.

JSON is the only accepted content type, so a pickle payload is refused before it is read.
Messages are acknowledged after the job is done (`acks_late`), so a job whose worker dies
comes back after the broker's visibility timeout, which outlasts any job's deadline.
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from celery import Celery, signals
from kombu.utils.url import parse_ssl_cert_reqs

from orchestrator.core.settings import Settings, get_settings
from orchestrator.store.client import SentinelUrl, is_sentinel_url
from workers.transport import SENTINEL_TRANSPORT, TRANSPORT, WORKER_ID_OPTION

ENFORCE_TASK = "runctl.enforce"


def make_app(settings: Settings, *, worker_id: str | None = None) -> Celery:
    """The Celery app, for workers and producers alike; a worker process passes the
    `worker_id` its lease is held under (orchestrator/store/leases.py).

    It has no result backend: a job's result is its outcome, published by the job itself
    (`orchestrator.store.outcomes`); storing Celery's copy too would double the writes per job and
    add one more Redis call that can fail after the job is done.
    """
    url, tls = broker_endpoint(settings.redis_url.get_secret_value())
    transport, sentinel_options = TRANSPORT, {}
    if is_sentinel_url(url):
        endpoint = SentinelUrl.parse(url)
        url, transport, sentinel_options = (endpoint.kombu_url(), SENTINEL_TRANSPORT,
                                            endpoint.kombu_options())  # fmt: skip
    app = Celery("runctl", broker=url, backend=None)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.queue_name,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_track_started=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_consumer="workers.consumer:DeadLetterConsumer",
        # kombu's Redis transport with an atomic fetch (BLMOVE): a worker killed just after
        # taking a message can no longer lose it. It reads one list per queue: no priorities.
        broker_transport=transport,
        broker_use_ssl=tls,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            # kombu's default pool of 10 connections raises (it does not wait) when a
            # thousand greenlets acknowledge at once: the consumer then reconnects and the
            # jobs it held wait out the visibility timeout. One connection per slot.
            "max_connections": settings.worker_concurrency + 64,
            "priority_steps": [0],
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
            # The sweep's mutex outlives a worker killed mid-sweep by this much (kombu's
            # default is 5 minutes, during which no dead worker's job comes back). Two
            # sweeps at once are safe: each restore is a transaction on the unacked hash.
            "unacked_mutex_expire": int(max(10.0, 3 * settings.restore_interval_s)),
            # The messages this process takes are recorded as held under this id.
            **({WORKER_ID_OPTION: worker_id} if worker_id else {}),
            **sentinel_options,  # the primary's name, for a sentinel:// URL
        },
        task_ignore_result=True,
        enable_utc=True,
        beat_schedule={
            "runctl-enforce": {
                "task": ENFORCE_TASK,
                "schedule": settings.enforce_interval_s,
                # A pass not started within one interval is dropped: the next one covers it.
                "options": {"queue": settings.queue_name, "expires": settings.enforce_interval_s},
            }
        },
    )
    return app


def broker_endpoint(url: str) -> tuple[str, dict[str, Any] | None]:
    """The broker URL for Celery, and its TLS options for a `rediss://` URL.

    The URL's `ssl_*` query parameters become the TLS options, and certificates are
    verified unless they say `ssl_cert_reqs=none`, as redis-py does for our own clients.
    kombu alone would skip TLS altogether with our transport class, and would let the
    URL's options replace (not extend) `broker_use_ssl`.
    """
    if not url.startswith("rediss://"):
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    for name, value in query:
        if name == "ssl_cert_reqs":
            options[name] = parse_ssl_cert_reqs(value)
        elif name == "ssl_check_hostname":
            options[name] = value.lower() != "false"
        elif name.startswith("ssl_"):
            options[name] = value
    kept = urlencode([(n, v) for n, v in query if not n.startswith("ssl_")])
    return urlunsplit(parts._replace(query=kept)), options


@signals.setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, **_: Any) -> None:
    # Connecting this signal stops Celery from installing its own handlers.
    from orchestrator.core.logs import configure

    settings = get_settings()
    configure(json_lines=settings.log_json, level=loglevel or settings.log_level)


@signals.worker_init.connect
def _build_context(sender: Any = None, **_: Any) -> None:
    # Fail at start-up, not on the first job, when the provider cannot be configured.
    # The lease is taken before the first message is, and renewed until shutdown.
    # Metrics are served before the lease is taken, so the card lists the port taken.
    from orchestrator.store.leases import WorkerCard
    from workers.context import get_context

    context = get_context()
    port = context.serve_metrics()
    worker_id = sender.app.conf.broker_transport_options.get(WORKER_ID_OPTION)
    if worker_id:
        card = WorkerCard.of_this_process(node=str(sender.hostname), metrics_port=port)
        context.hold_lease(worker_id, card)


@signals.worker_ready.connect
def _start_recovery(sender: Any = None, **_: Any) -> None:
    from workers.context import get_context
    from workers.recovery import give_back_held, start_sweeper

    context = get_context()
    start_sweeper(sender.app, context.redis, context.settings)
    worker_id = sender.app.conf.broker_transport_options.get(WORKER_ID_OPTION)
    if worker_id:
        context.hand_over.give_back = partial(give_back_held, sender.app, worker_id)


@signals.worker_shutting_down.connect
def _hand_over(how: str = "", **_: Any) -> None:
    # A warm shutdown (SIGTERM) waits for running jobs only for the grace; see handover.py.
    from workers.context import built_context

    context = built_context()
    if context is not None and how == "Warm":
        context.hand_over.begin()


@signals.worker_shutdown.connect
def _end_lease(**_: Any) -> None:
    # After the pool has stopped: whatever this worker still holds goes back at the next
    # sweep of any other worker, without waiting for the lease to lapse.
    from workers.context import built_context

    context = built_context()
    if context is not None:
        context.end_lease()
        for times in context.settle_times:
            times.flush()  # the last second's observations

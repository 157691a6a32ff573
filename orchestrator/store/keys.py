"""Every Redis key, stream, channel and queue name the service uses, in one place."""

from __future__ import annotations

PREFIX = "runctl"

OUTCOME_STREAM = f"{PREFIX}:outcomes"
"""Stream of every published outcome, capped by `outcome_stream_maxlen`."""

OUTCOME_CHANNEL = f"{PREFIX}:outcomes"
"""Pub/sub channel announcing each outcome as it is published."""


def outcome(job_id: str) -> str:
    """String: the outcome JSON of a finished job; its existence is the exactly-once guard."""
    return f"{PREFIX}:outcome:{job_id}"


def job_state(job_id: str) -> str:
    """Hash: progress of a job in flight, so that a redelivered job resumes where it was."""
    return f"{PREFIX}:job:{job_id}"


def inflight(provider: str, thread_id: str | None, run_id: str) -> str:
    """String: the id of the job in flight for this run; one job per run at a time.
    `provider` is the connection's name; a run without a thread (Responses) has `-`."""
    return f"{PREFIX}:inflight:{provider}:{thread_id or '-'}:{run_id}"


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def rate(provider: str) -> str:
    """String: the connection's next request slot (GCRA theoretical arrival time, epoch ms)."""
    return f"{PREFIX}:rate:{provider}"


def rate_backoff(provider: str) -> str:
    """Hash with a TTL: the share of its rate the connection is backed off to after a 429
    that named no delay (`share`), and when it was cut (`at_ms`); it recovers with time."""
    return f"{PREFIX}:rate_backoff:{provider}"


def pause(provider: str) -> str:
    """String with a TTL: while it exists, no worker sends to the provider (it said 429)."""
    return f"{PREFIX}:pause:{provider}"


def bulk(bulk_id: str) -> str:
    """Hash: a bulk job's record (status, totals, counts per result, its rate)."""
    return f"{PREFIX}:bulk:{bulk_id}"


def bulk_rate(bulk_id: str) -> str:
    """String: a bulk job's own next request slot, when it has its own --rate."""
    return f"{PREFIX}:bulk:{bulk_id}:rate"


def bulk_seen(bulk_id: str) -> str:
    """Set: the runs a bulk job has taken, so a run listed twice is cancelled once."""
    return f"{PREFIX}:bulk:{bulk_id}:seen"


def bulk_outcomes(bulk_id: str) -> str:
    """List: one outcome JSON per finished job of a bulk job, for its report."""
    return f"{PREFIX}:bulk:{bulk_id}:outcomes"


TRACKED = f"{PREFIX}:tracked"
"""Sorted set: tracked runs (`thread_id:run_id`), scored by when each next needs a look."""

WATCHED = f"{PREFIX}:watched"
"""Set: thread ids whose runs the enforcer lists on every pass."""

ENFORCER_LOCK = f"{PREFIX}:enforcer:lock"
"""String with a TTL: held by the one enforcer acting now."""

ENFORCER_PENDING = f"{PREFIX}:enforcer:pending"
"""Hash: job id -> the enforcer's cancel in flight (run, rule, attempt), for escalation."""

ENFORCER_REPORTED = f"{PREFIX}:enforcer:reported"
"""Set: `thread_id:run_id:rule` already reported by a `report` rule (reported once)."""

EVENTS = f"{PREFIX}:events"
"""Stream: every enforcement action (cancelled, reported, escalated, alerted)."""

ALERTS = f"{PREFIX}:alerts"
"""Stream and pub/sub channel: runs that stayed in `cancelling` through every re-issue."""


ACCEPTED = f"{PREFIX}:accepted"
"""Sorted set: every job admitted to the queue, by when (for `runctl audit`), trimmed to
the outcomes' keep time."""

DEAD_LETTERS = f"{PREFIX}:dead-letters"
"""List: messages refused by workers (not JSON, not a job, bad fields), newest first."""


def bulk_elsewhere(bulk_id: str) -> str:
    """List: runs of a bulk job that another job was already cancelling (JSON rows, for the
    report)."""
    return f"{PREFIX}:bulk:{bulk_id}:elsewhere"


def bulk_jobs(bulk_id: str) -> str:
    """Sorted set: the jobs a bulk job admitted (for `runctl audit --bulk`)."""
    return f"{PREFIX}:bulk:{bulk_id}:jobs"


FETCHERS = f"{PREFIX}:fetchers"
"""Hash: every worker channel's fetch list -> its queue and when it was last announced."""


def fetching(channel_id: str) -> str:
    """List: the message one worker channel has taken from its queue but not yet recorded
    in kombu's `unacked` hash (at most one, for milliseconds; see workers/transport.py)."""
    return f"{PREFIX}:fetching:{channel_id}"


OWNERS = f"{PREFIX}:owners"
"""Hash: delivery tag -> the worker process holding the message (see store/leases.py),
written in the same MULTI that records the message in kombu's `unacked` hash."""


def lease(worker_id: str) -> str:
    """String with a TTL: exists while worker process `worker_id` renews its lease."""
    return f"{PREFIX}:lease:{worker_id}"


WORKERS = f"{PREFIX}:workers"
"""Hash: worker id -> its card (JSON: host, pid, node name, metrics port, start time),
listed while its lease is held (HSETNX with each renewal, removed when the lease ends or
lapses), so the fleet is read without scanning for lease keys (store/leases.py,
store/fleet.py)."""

BULKS = f"{PREFIX}:bulks"
"""Sorted set: every bulk job's id, scored by when it was created (epoch s), trimmed to
the records' keep time: the fleet counts bulk jobs by status without a scan."""


SUPERSEDED = f"{PREFIX}:superseded"
"""Hash: job id -> the job that replaced its in-flight marker (`runctl cancel --force`).
One small entry per forced replacement; the superseded job reads it if it ever runs."""


def settle_times(connection: str) -> str:
    """Hash: a provider connection's settle-time histogram (`store.settling`), shared by
    the fleet; `connection` names the provider and a digest of its base URL."""
    return f"{PREFIX}:settle:{connection}"


BULK_FINISHED = f"{PREFIX}:bulk-finished"
"""Stream: one entry (`bulk_id`) when a bulk job's last outcome lands (for the notifier)."""

NOTIFY_GROUP = f"{PREFIX}-notify"
"""The notifiers' consumer group on the outcome, events, alerts and bulk-finished streams."""

NOTIFY_DUE = f"{PREFIX}:notify:due"
"""Sorted set: delivery ids waiting for their next attempt, scored by when (epoch s)."""

NOTIFY_DELIVERIES = f"{PREFIX}:notify:deliveries"
"""Hash: delivery id -> the delivery (JSON, no secret), while it waits in NOTIFY_DUE."""

NOTIFY_FAILED = f"{PREFIX}:notify:failed"
"""List: deliveries that failed for good (JSON with why), newest first, for replay."""

NOTIFY_INCIDENTS = f"{PREFIX}:notify:incidents"
"""Hash: `subscription|thread_id|run_id` -> the open PagerDuty dedup keys (JSON list)."""


API_REQUESTS = f"{PREFIX}:api:requests"
"""Stream: every mutating request made through `runctl serve` (token name, action, target)."""


def api_rate(token_name: str) -> str:
    """The rate-limit bucket name of one API token's mutating requests (a name no
    connection can have: connection names have no colon)."""
    return f"api:{token_name}"

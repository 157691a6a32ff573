"""One enforcement pass: look at the runs that are due, act on those past their budget,
escalate cancels that stuck in `cancelling`, and record every action as an event.

Only one enforcer acts at a time across replicas (a Redis lock with a TTL). The per-run
bookkeeping of a pass (reschedules, drops, events) is written in one pipeline, whatever
the number of runs; only the provider lookups are per run, and they run side by side.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator.core.models import DEFAULT_CONNECTION, CancelJob, Outcome, Result, Run
from orchestrator.core.policies import Action, PolicySet, judge
from orchestrator.core.provider import Dialect, ProviderError
from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.store import keys
from orchestrator.store.admission import Submitted
from orchestrator.store.tracking import RunRef, Tracker, member

log = logging.getLogger(__name__)

# KEYS: lock. ARGV: token. Deletes the lock only if this enforcer still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class EnforcerConfig:
    batch_limit: int = 1000  # due runs looked at per pass
    recheck_max_s: float = 300.0  # a run within budget is looked at again at least this often
    recheck_min_s: float = 5.0
    reissue_max: int = 2  # re-issued cancels for a run stuck in `cancelling`, then an alert
    reissue_backoff_s: float = 30.0  # doubled on each re-issue
    lock_ttl_s: float = 120.0
    lookups_at_once: int = 16
    deadline_s: float = 120.0  # of the cancel jobs it queues


@dataclass
class PassReport:
    """What one pass did (or, in a dry run, would do)."""

    acted: bool = True  # False: another enforcer held the lock
    looked_at: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Plan:
    next_look: dict[RunRef, float] = field(default_factory=dict)
    drop: list[RunRef] = field(default_factory=list)
    cancels: list[tuple[CancelJob, dict[str, Any]]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    pending_set: dict[str, str] = field(default_factory=dict)
    pending_del: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Enforcer:
    client: redis.Redis
    policies: PolicySet
    # One run, through its connection's rate limiter and retries: (connection, thread, run).
    fetch: Callable[[str, str | None, str], Run]
    list_runs: Callable[[str, str], list[Run]]  # a thread's runs, every page
    submit_many: Callable[[Sequence[CancelJob]], list[Submitted]]
    clock: Callable[[], float]
    # Which statuses are terminal for a connection, in its provider's words.
    dialect_of: Callable[[str], Dialect]
    config: EnforcerConfig = field(default_factory=EnforcerConfig)
    telemetry: Telemetry = NO_TELEMETRY

    def run_once(self, *, dry_run: bool = False) -> PassReport:
        token = uuid.uuid4().hex
        lock_ms = int(self.config.lock_ttl_s * 1000)
        if not self.client.set(keys.ENFORCER_LOCK, token, nx=True, px=lock_ms):
            return PassReport(acted=False)
        try:
            return self._pass(dry_run)
        finally:
            self.client.register_script(_RELEASE)(keys=[keys.ENFORCER_LOCK], args=[token])

    def _pass(self, dry_run: bool) -> PassReport:
        tracker = Tracker(self.client)
        now_s = self.clock()
        if not dry_run:
            for provider, thread_id in tracker.watched_threads():
                self._discover(tracker, provider, thread_id, now_s)
        due = tracker.due(now_s=now_s, limit=self.config.batch_limit)
        plan = _Plan()
        with ThreadPoolExecutor(max_workers=self.config.lookups_at_once) as pool:
            looked = list(pool.map(self._look, due))
        for target, run in zip(due, looked, strict=True):
            self._judge(plan, target, run, now_s)
        self._escalate(plan, now_s)
        self._first_reports(plan)
        if not dry_run:
            self._act(plan, tracker, now_s)
        return PassReport(looked_at=len(due), events=plan.events + plan.alerts)

    def _discover(self, tracker: Tracker, provider: str, thread_id: str, now_s: float) -> None:
        try:
            runs = self.list_runs(provider, thread_id)
            dialect = self.dialect_of(provider)
        except (ProviderError, KeyError) as error:
            log.warning("listing a watched thread failed: %s", getattr(error, "message", error))
            return
        live = (r for r in runs if not dialect.is_terminal(r.status))
        tracker.track_many(((provider, thread_id, r.id) for r in live), now_s=now_s)

    def _look(self, target: RunRef) -> Run | None:
        try:
            return self.fetch(*target)
        except KeyError:
            return None  # a connection no longer configured: stop tracking its runs
        except ProviderError as error:
            if error.http_status == 404:
                return None
            raise

    def _judge(self, plan: _Plan, target: RunRef, run: Run | None, now_s: float) -> None:
        provider, thread_id, run_id = target
        if run is None or self.dialect_of(provider).is_terminal(run.status):
            plan.drop.append(target)
            return
        verdict = judge(self.policies, run, thread_id or "", now_s, provider=provider)
        cfg = self.config
        if verdict is None:
            plan.next_look[target] = now_s + cfg.recheck_max_s
            return
        if not verdict.over:
            until_over = verdict.budget_s - verdict.age_s + 0.001
            plan.next_look[target] = now_s + min(
                max(until_over, cfg.recheck_min_s), cfg.recheck_max_s
            )
            return
        where = {"provider": provider, "thread_id": thread_id, "run_id": run_id}
        event = {"run": where, "rule": verdict.rule.name, "status": str(run.status),
                 "age_s": round(verdict.age_s, 1), "budget_s": verdict.budget_s}  # fmt: skip
        plan.next_look[target] = now_s + cfg.recheck_max_s
        if verdict.rule.action is Action.REPORT:
            plan.reports.append((f"{member(*target)}:{verdict.rule.name}", event))
            return
        job = self._job(provider, thread_id, run_id, verdict.rule.name)
        plan.cancels.append((job, {"attempt": 0, "rule": verdict.rule.name, **where}))
        plan.events.append({"action": "cancelled", "job_id": job.job_id, **event})

    def _first_reports(self, plan: _Plan) -> None:
        """A `report` rule reports a run once, not on every pass (one call for all)."""
        if not plan.reports:
            return
        seen: Any = self.client.smismember(keys.ENFORCER_REPORTED, [k for k, _ in plan.reports])
        plan.reports = [r for r, known in zip(plan.reports, seen, strict=True) if not known]
        plan.events += [{"action": "reported", **event} for _, event in plan.reports]

    def _job(self, provider: str, thread_id: str | None, run_id: str, rule: str) -> CancelJob:
        return CancelJob(
            provider=provider,
            thread_id=thread_id,
            run_id=run_id,
            reason=f"policy:{rule}",
            requested_by="enforcer",
            deadline_s=self.config.deadline_s,
        )

    def _escalate(self, plan: _Plan, now_s: float) -> None:
        pending: Any = self.client.hgetall(keys.ENFORCER_PENDING)
        if not pending:
            return
        job_ids = [keys.text(j) for j in pending]
        raw_outcomes: Any = self.client.mget([keys.outcome(j) for j in job_ids])
        for job_id, raw_outcome in zip(job_ids, raw_outcomes, strict=True):
            entry = json.loads(pending[job_id.encode()])
            if raw_outcome is None:
                continue
            outcome = Outcome.model_validate_json(raw_outcome)
            if outcome.result is not Result.TIMED_OUT:
                plan.pending_del.append(job_id)
            else:
                self._stuck(plan, job_id, entry, now_s)

    def _stuck(self, plan: _Plan, job_id: str, entry: dict[str, Any], now_s: float) -> None:
        cfg = self.config
        provider = entry.get("provider", DEFAULT_CONNECTION)
        run = {"provider": provider, "thread_id": entry["thread_id"], "run_id": entry["run_id"]}
        if entry["attempt"] >= cfg.reissue_max:
            plan.pending_del.append(job_id)
            plan.alerts.append({"action": "alerted", "run": run, "rule": entry["rule"],
                                "reissues": entry["attempt"],
                                "message": "still cancelling after every re-issue"})  # fmt: skip
            return
        reissue_at = entry.get("reissue_at")
        if reissue_at is None:
            entry["reissue_at"] = now_s + cfg.reissue_backoff_s * 2 ** entry["attempt"]
            plan.pending_set[job_id] = json.dumps(entry)
            return
        if now_s < reissue_at:
            return
        job = self._job(provider, entry["thread_id"], entry["run_id"], entry["rule"])
        plan.pending_del.append(job_id)
        plan.cancels.append((job, {**run, "rule": entry["rule"], "attempt": entry["attempt"] + 1}))
        plan.events.append({"action": "escalated", "job_id": job.job_id, "run": run,
                            "rule": entry["rule"], "attempt": entry["attempt"] + 1})  # fmt: skip

    def _act(self, plan: _Plan, tracker: Tracker, now_s: float) -> None:
        submitted = self.submit_many([job for job, _ in plan.cancels])
        already = set()
        for (job, entry), sub in zip(plan.cancels, submitted, strict=True):
            if sub.duplicate:
                already.add(job.job_id)  # a cancel for the run is in flight: no second one
            else:
                plan.pending_set[job.job_id] = json.dumps(entry)
        plan.events = [e for e in plan.events if e.get("job_id") not in already]
        pipe = self.client.pipeline(transaction=False)
        tracker.settle(next_look=plan.next_look, drop=plan.drop, pipe=pipe)
        if plan.pending_set:
            pipe.hset(keys.ENFORCER_PENDING, mapping=plan.pending_set)  # type: ignore[arg-type]
        if plan.pending_del:
            pipe.hdel(keys.ENFORCER_PENDING, *plan.pending_del)
        if plan.reports:
            pipe.sadd(keys.ENFORCER_REPORTED, *(k for k, _ in plan.reports))
        for event in plan.events + plan.alerts:
            pipe.xadd(keys.EVENTS, {"event": json.dumps({"at": now_s, **event})},
                      maxlen=100_000, approximate=True)  # fmt: skip
        for alert in plan.alerts:
            body = json.dumps({"at": now_s, **alert})
            pipe.xadd(keys.ALERTS, {"alert": body}, maxlen=100_000, approximate=True)
            pipe.publish(keys.ALERTS, body)
        pipe.execute()
        for event in plan.events + plan.alerts:
            self.telemetry.enforcement_action(str(event["action"]))

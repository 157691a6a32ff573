"""The metrics one worker process records, behind the `Telemetry` port of the core."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestrator.core.models import Outcome, Result

REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
OUTCOME_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                     1800.0, 3600.0)  # fmt: skip
METHODS = ("GET", "POST")
STATUS_CLASSES = ("2xx", "4xx", "5xx", "error")
ENFORCEMENT_ACTIONS = ("cancelled", "reported", "escalated", "alerted")


def status_class(status: int | None) -> str:
    """`2xx`, `4xx`, `5xx` (an answer's class), or `error` (no answer at all)."""
    return "error" if status is None else f"{status // 100}xx"


class PrometheusTelemetry:
    """A worker's metrics on `registry` (its own, not the global one). `providers`: the
    connection names whose series start at zero, so a rate is defined from the start."""

    def __init__(self, registry: CollectorRegistry, *, providers: Iterable[str] = ()) -> None:
        self.registry = registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(
            name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        self.outcomes = counter(
            "runctl_outcomes", "Outcomes published, by connection and result.",
            ("provider", "result"),
        )  # fmt: skip
        self.time_to_outcome = histogram(
            "runctl_time_to_outcome_seconds",
            "From the job's requested_at to its outcome's publication.",
            ("provider", "result"),
            OUTCOME_BUCKETS_S,
        )
        self.requests = counter(
            "runctl_provider_requests",
            "HTTP requests to providers, by connection, method and status class "
            "(error: no answer).",
            ("provider", "method", "status_class"),
        )
        self.request_seconds = histogram(
            "runctl_provider_request_duration_seconds",
            "Time from sending a provider request to its answer (or its failure).",
            ("provider", "method"),
            REQUEST_BUCKETS_S,
        )
        self.throttled = counter(
            "runctl_provider_throttled", "429 answers from providers.", ("provider",)
        )
        self.waits = counter(
            "runctl_rate_limit_waits",
            "Requests that waited for their slot under the shared rate limit.",
            ("provider",),
        )
        self.wait_seconds = counter(
            "runctl_rate_limit_wait_seconds",
            "Seconds requests waited for their slot under the shared rate limit.",
            ("provider",),
        )
        self.pauses = counter(
            "runctl_rate_limit_pauses",
            "429s with a delay that paused every worker's requests to the provider.",
            ("provider",),
        )
        self.actions = counter(
            "runctl_enforcement_actions", "Enforcement actions, by action.", ("action",)
        )
        self.dead_letters = counter(
            "runctl_dead_letters_parked", "Messages refused and parked in the dead letters."
        )
        self.jobs_running = Gauge(
            "runctl_worker_jobs_running", "Jobs running in this worker process now.",
            registry=registry,
        )  # fmt: skip
        for provider in providers:
            self._start_at_zero(provider)
        for action in ENFORCEMENT_ACTIONS:
            self.actions.labels(action)

    def _start_at_zero(self, provider: str) -> None:
        for result in Result:
            self.outcomes.labels(provider, result.value)
        for method in METHODS:
            for cls in STATUS_CLASSES:
                self.requests.labels(provider, method, cls)
        for metric in (self.throttled, self.waits, self.wait_seconds, self.pauses):
            metric.labels(provider)

    def count_running(self, running: Callable[[], int]) -> None:
        """Read the jobs running now from `running` at each scrape."""
        self.jobs_running.set_function(lambda: float(running()))

    # --- the Telemetry port (orchestrator.core.telemetry) ---

    def provider_request(
        self, provider: str, method: str, status: int | None, elapsed_s: float
    ) -> None:
        self.requests.labels(provider, method, status_class(status)).inc()
        self.request_seconds.labels(provider, method).observe(elapsed_s)
        if status == 429:
            self.throttled.labels(provider).inc()

    def rate_limit_wait(self, provider: str, wait_s: float) -> None:
        self.waits.labels(provider).inc()
        self.wait_seconds.labels(provider).inc(wait_s)

    def rate_limit_pause(self, provider: str) -> None:
        self.pauses.labels(provider).inc()

    def outcome_published(self, outcome: Outcome, *, published_at_s: float) -> None:
        labels = (outcome.provider, outcome.result.value)
        self.outcomes.labels(*labels).inc()
        waited_s = published_at_s - outcome.requested_at.timestamp()
        self.time_to_outcome.labels(*labels).observe(max(0.0, waited_s))

    def enforcement_action(self, action: str) -> None:
        self.actions.labels(action).inc()

    def dead_letter_parked(self) -> None:
        self.dead_letters.inc()

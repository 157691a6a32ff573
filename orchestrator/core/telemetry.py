"""What the service tells its metrics, as a port: the library records through `Telemetry`
and never imports a metrics library. `orchestrator.metrics.PrometheusTelemetry` is the real
one (a worker builds it); `NO_TELEMETRY` records nothing (tests, the CLI).

Every argument that becomes a label is from a small fixed set: a connection's name, an
HTTP method, a result, an enforcement action. Never a run, thread or job id.
"""

from __future__ import annotations

from typing import Protocol

from orchestrator.core.models import Outcome


class Telemetry(Protocol):
    def provider_request(
        self, provider: str, method: str, status: int | None, elapsed_s: float
    ) -> None:
        """One HTTP request to a provider; `status` None: no answer (a transport error)."""
        ...

    def rate_limit_wait(self, provider: str, wait_s: float) -> None:
        """A request waits `wait_s` (> 0) for its slot under the shared rate limit."""
        ...

    def rate_limit_pause(self, provider: str) -> None:
        """A 429 with a delay paused every worker's requests to the provider."""
        ...

    def outcome_published(self, outcome: Outcome, *, published_at_s: float) -> None:
        """A job's one outcome was published (not a redelivery's repeat)."""
        ...

    def enforcement_action(self, action: str) -> None:
        """The enforcer acted: `cancelled`, `reported`, `escalated` or `alerted`."""
        ...

    def dead_letter_parked(self) -> None:
        """A refused message was parked in the dead letters."""
        ...


class _NoTelemetry:
    def provider_request(
        self, provider: str, method: str, status: int | None, elapsed_s: float
    ) -> None:
        pass

    def rate_limit_wait(self, provider: str, wait_s: float) -> None:
        pass

    def rate_limit_pause(self, provider: str) -> None:
        pass

    def outcome_published(self, outcome: Outcome, *, published_at_s: float) -> None:
        pass

    def enforcement_action(self, action: str) -> None:
        pass

    def dead_letter_parked(self) -> None:
        pass


NO_TELEMETRY: Telemetry = _NoTelemetry()

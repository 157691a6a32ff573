"""Prometheus metrics: what each worker process records (`PrometheusTelemetry`, served on
its own `/metrics`), the fleet's gauges read from Redis at scrape time (`fleet_registry`,
for `runctl serve` and `runctl metrics`), and serving a registry over HTTP (`serve`).

Labels are from small fixed sets (connection names, HTTP methods, status classes, results,
enforcement actions, bulk statuses): never a run, thread or job id.
"""

from __future__ import annotations

from orchestrator.metrics.fleet import FleetCollector, fleet_registry, worker_targets
from orchestrator.metrics.recorder import PrometheusTelemetry, status_class
from orchestrator.metrics.serving import serve

__all__ = [
    "FleetCollector",
    "PrometheusTelemetry",
    "fleet_registry",
    "serve",
    "status_class",
    "worker_targets",
]

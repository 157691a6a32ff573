"""The fleet's gauges, read from Redis at each scrape (`store.fleet.read_fleet`): what
`runctl serve` and `runctl metrics` expose. One read per scrape, two round trips."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.core.settings import Settings
from orchestrator.store.fleet import Fleet, read_fleet

log = logging.getLogger(__name__)


class FleetCollector(Collector):
    """Gauges of the fleet; `runctl_fleet_up` is 0 (and nothing else is given) when Redis
    did not answer."""

    def __init__(
        self, client: redis.Redis, *, queue_name: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = client
        self._queue = queue_name
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            fleet = read_fleet(self._redis, queue_name=self._queue, now_s=self._clock())
        except redis.RedisError as exc:
            log.warning("could not read the fleet from redis (%s)", type(exc).__name__)
            yield GaugeMetricFamily("runctl_fleet_up", "1 when Redis answered this scrape.", 0)
            return
        yield GaugeMetricFamily("runctl_fleet_up", "1 when Redis answered this scrape.", 1)
        yield from self._gauges(fleet)

    def _gauges(self, fleet: Fleet) -> Iterator[GaugeMetricFamily]:
        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("runctl_workers_alive", "Worker processes holding a lease now.",
                    fleet.workers_alive)  # fmt: skip
        yield gauge("runctl_jobs_in_flight", "Jobs taken by workers and not yet acknowledged.",
                    fleet.jobs_in_flight)  # fmt: skip
        depth = GaugeMetricFamily("runctl_queue_depth", "Messages waiting in the queue.",
                                  labels=["queue"])  # fmt: skip
        depth.add_metric([self._queue], fleet.queue_depth)
        yield depth
        age = GaugeMetricFamily(
            "runctl_queue_oldest_age_seconds",
            "Since the next queued job was requested (0: the queue is empty).",
            labels=["queue"],
        )
        if fleet.queue_depth == 0:
            age.add_metric([self._queue], 0.0)
        elif fleet.oldest_queued_age_s is not None:
            age.add_metric([self._queue], fleet.oldest_queued_age_s)
        yield age
        yield gauge("runctl_dead_letters", "Refused messages kept in the dead letters.",
                    fleet.dead_letters)  # fmt: skip
        yield gauge("runctl_alerts", "Entries in the alerts stream.", fleet.alerts)
        yield gauge("runctl_tracked_runs", "Runs the enforcer watches.", fleet.tracked_runs)
        bulks = GaugeMetricFamily("runctl_bulk_jobs", "Bulk jobs kept, by status.",
                                  labels=["status"])  # fmt: skip
        for status, count in sorted(fleet.bulk_jobs.items()):
            bulks.add_metric([status], count)
        yield bulks


def fleet_registry(client: redis.Redis, settings: Settings) -> CollectorRegistry:
    """A registry holding the fleet's gauges, read from `client` at each scrape: what
    `/metrics` of `runctl serve` exposes (e.g. `make_asgi_app(fleet_registry(...))`)."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(client, queue_name=settings.queue_name))
    return registry


def worker_targets(client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """The live workers' metrics endpoints (`host:port`, from their cards) as a Prometheus
    file_sd list, one group, so that Prometheus scrapes exactly the workers there are."""
    fleet = read_fleet(client, queue_name=settings.queue_name, now_s=time.time())
    found = sorted(
        f"{w.card.host}:{w.card.metrics_port}"
        for w in fleet.workers
        if w.alive and w.card.metrics_port is not None
    )
    return [{"targets": found, "labels": {}}]

"""The shipped Prometheus rules and Grafana dashboard: valid for promtool, firing on the
series they should, and naming only metrics runctl exposes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.core.models import Outcome, Result
from orchestrator.core.settings import Settings
from orchestrator.metrics import PrometheusTelemetry, fleet_registry

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "runctl.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    """RUNCTL_PROMTOOL (set by .ci/run from .ci/install-tools), else promtool on PATH, else
    the one .ci/install-tools unpacked. In CI (CI=true) a missing promtool fails; elsewhere
    the checks are skipped."""
    unpacked = Path(__file__).resolve().parents[2] / ".ci/tools/prometheus/usr/bin/promtool"
    found = os.environ.get("RUNCTL_PROMTOOL") or shutil.which("promtool")
    if found or unpacked.is_file():
        return found or str(unpacked)
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing in CI: .ci/install-tools should have installed it")
    pytest.skip("no promtool here (bash .ci/install-tools installs it)")


def run(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_are_valid(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", RULES.name)


def test_the_alerts_fire_on_the_series_they_should(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts_test.yml")


def test_the_scrape_example_is_valid(promtool: str) -> None:
    run(promtool, "check", "config", "--syntax-only", "prometheus.yml")  # no token file here


def test_rules_and_dashboard_name_only_exposed_metrics(redis_url: str) -> None:
    worker = CollectorRegistry()
    telemetry = PrometheusTelemetry(worker, providers=["openai"])
    now = datetime.now(UTC)
    outcome = Outcome(job_id="j", run_id="r", result=Result.CANCELLED, requested_at=now,
                      finished_at=now, duration_s=0.0)  # fmt: skip
    telemetry.outcome_published(outcome, published_at_s=now.timestamp())
    telemetry.provider_request("openai", "POST", 429, 0.1)
    telemetry.dead_letter_parked()
    client = redis.Redis.from_url(redis_url)
    try:
        fleet = fleet_registry(client, Settings(queue_name="runctl-names"))
        exposed = {
            sample.name
            for registry in (worker, fleet)
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
        }
    finally:
        client.close()
    named = set(re.findall(r"\brunctl_[a-z_]+", RULES.read_text() + DASHBOARD.read_text()))
    assert "runctl_outcomes_total" in named  # the pattern finds names at all
    assert named - exposed == set()

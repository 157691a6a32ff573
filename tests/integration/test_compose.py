"""docker-compose.yml, checked as far as a machine without a Docker engine allows.

1. The file is valid for a compose implementation (`docker-compose config -q`, Debian's
   docker-compose; `.ci/install-tools` installs it). Without the tool the test skips, except
   in CI (`CI=true`), where it fails.
2. Every service's `command` runs natively with the compose file's own `environment`: the
   image's entrypoint (`runctl`) becomes `python -m orchestrator`, the `redis` service is the
   same `redis-server` command on a free port, service host names become 127.0.0.1 and the
   port each service really listens on, mounted files their source in the repository, and
   `deploy.replicas` the number of processes. One bulk job then goes through that stack,
   from the `cli` service's environment, and every job ends with one outcome.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev deps

from orchestrator.devkit.embedded_redis import free_port, is_reachable, server_executable
from orchestrator.devkit.stage import Child, SimulatorAdmin, base_env, spawn, wait_until
from tests.integration.harness import ISSUED_KEYS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
RUNS = 40
ENTRYPOINT = [sys.executable, "-m", "orchestrator"]  # the image's ENTRYPOINT ["runctl"]
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def compose_command() -> list[str] | None:
    """A compose implementation on this machine: `docker-compose`, or `docker compose`."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and _succeeds(["docker", "compose", "version"]):
        return ["docker", "compose"]
    return None


def _succeeds(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def compose() -> list[str]:
    found = compose_command()
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("no compose implementation in CI: .ci/install-tools installs one")
        pytest.skip("no docker-compose here (.ci/install-tools installs it)")
    return found


def validate(compose: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    # An empty environment: the file's own defaults (${VAR:-default}) are what is checked.
    return subprocess.run(
        [*compose, "-f", str(path), "config", "-q"],
        capture_output=True, text=True, check=False, timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )  # fmt: skip


def test_the_compose_file_is_valid(compose: list[str]) -> None:
    checked = validate(compose, COMPOSE_FILE)
    assert checked.returncode == 0, checked.stderr


def test_the_validator_refuses_a_broken_file(compose: list[str], tmp_path: Path) -> None:
    # The control: the check above can fail (a service whose `depends_on` names no service).
    broken = COMPOSE_FILE.read_text().replace(
        "redis: {condition: service_healthy}", "redis-typo: {condition: service_healthy}", 1
    )
    (tmp_path / "docker-compose.yml").write_text(broken)
    (tmp_path / "runctl.toml").write_text("")
    assert validate(compose, tmp_path / "docker-compose.yml").returncode != 0


# --- the stack, natively ---------------------------------------------------------------------


def interpolate(value: Any, shell: dict[str, str]) -> Any:
    """Compose's `${VAR:-default}` with only the `shell` variables set (the file's own
    defaults for the rest)."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: shell.get(m["name"]) or m["default"] or "", value)
    if isinstance(value, list):
        return [interpolate(item, shell) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, shell) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class NativeStack:
    """Where the compose services listen natively, and how their settings translate."""

    hosts: dict[str, str]  # "redis:6379" -> "127.0.0.1:PORT"
    mounts: dict[str, str]  # container path -> repository path

    def translate(self, value: str) -> str:
        for inside, native in self.hosts.items():
            value = value.replace(f"//{inside}", f"//{native}")
        return self.mounts.get(value, value)

    def env(self, service: dict[str, Any]) -> dict[str, str]:
        """The service's own `environment` (anchors merged), translated, over base_env()."""
        environment = service.get("environment") or {}
        return base_env() | {name: self.translate(str(v)) for name, v in environment.items()}

    def argv(self, service: dict[str, Any]) -> list[str]:
        return [*ENTRYPOINT, *(self.translate(str(part)) for part in service.get("command", []))]


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            found[target] = str((ROOT / source).resolve())
    return found


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    """`argv` with `option`'s value replaced."""
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


@dataclass
class Started:
    stack: NativeStack
    services: dict[str, Any]
    processes: dict[str, list[Child]]
    simulator: SimulatorAdmin
    log_dir: Path
    serve_url: str
    token: str = field(repr=False)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    # What the file's header asks of the operator's shell: the API token's SHA-256.
    token = f"compose-token-{secrets.token_hex(16)}"
    ISSUED_KEYS.append(token)
    shell = {"RUNCTL_API_TOKEN_SHA256": hashlib.sha256(token.encode()).hexdigest()}
    services: dict[str, Any] = interpolate(
        yaml.safe_load(COMPOSE_FILE.read_text())["services"], shell
    )
    log_dir = tmp_path_factory.mktemp("compose")
    redis_port, sim_port, serve_port = free_port(), free_port(), free_port()
    mounts: dict[str, str] = {}
    for service in services.values():
        mounts |= mounts_of(service)
    stack = NativeStack(
        hosts={"redis:6379": f"127.0.0.1:{redis_port}", "simulator:8787": f"127.0.0.1:{sim_port}"},
        mounts=mounts,
    )
    processes: dict[str, list[Child]] = {}
    with ExitStack() as stops:

        def start(name: str, argv: list[str], env: dict[str, str], count: int = 1) -> None:
            for index in range(count):
                child = spawn(
                    f"{name}-{index}", argv, env=env, log_path=log_dir / f"{name}-{index}.log"
                )
                stops.callback(child.stop)
                processes.setdefault(name, []).append(child)

        # redis: its own command on a free loopback port, with a data directory of its own.
        redis_argv = [server_executable(), *services["redis"]["command"][1:]]
        start("redis", [*redis_argv, "--port", str(redis_port), "--bind", "127.0.0.1",
                        "--dir", str(log_dir)], base_env())  # fmt: skip
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        wait_until(lambda: is_reachable(redis_url), what="the compose redis")

        # simulator: its command, listening on loopback at a free port.
        sim_argv = stack.argv(services["simulator"])
        sim_argv = with_option(
            with_option(sim_argv, "--host", "127.0.0.1"), "--port", str(sim_port)
        )
        start("simulator", sim_argv, stack.env(services["simulator"]))
        sim = SimulatorAdmin(f"http://127.0.0.1:{sim_port}/v1", api_key="")
        wait_until(sim.healthy, what="the compose simulator")

        for name, service in services.items():
            if name in {"redis", "simulator"} or "command" not in service:
                continue  # `cli` has no command: it is what `docker compose run` uses
            argv = stack.argv(service)
            if name == "serve":  # on loopback, at a free port
                argv = with_option(
                    with_option(argv, "--host", "127.0.0.1"), "--port", str(serve_port)
                )
            replicas = int(service.get("deploy", {}).get("replicas", 1))
            start(name, argv, stack.env(service), replicas)
        serve_url = f"http://127.0.0.1:{serve_port}"
        wait_until(lambda: _answers(f"{serve_url}/healthz"), what="the compose serve")
        yield Started(stack, services, processes, sim, log_dir, serve_url, token)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def runctl(started: Started, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose run --rm cli ARGS`, natively: the `cli` service's environment."""
    return subprocess.run(
        [*ENTRYPOINT, *args], env=started.stack.env(started.services["cli"]),
        capture_output=True, text=True, check=False, timeout=180, cwd=started.log_dir,
    )  # fmt: skip


def test_every_compose_service_runs_natively_and_a_bulk_job_goes_through(
    native: Started,
) -> None:
    assert native.processes.keys() >= {"redis", "simulator", "worker", "beat", "notifier", "serve"}
    assert len(native.processes["worker"]) == 2  # deploy.replicas
    runs = native.simulator.seed(RUNS, status="in_progress")
    targets = native.log_dir / "targets.jsonl"
    targets.write_text("".join(json.dumps({"thread_id": t, "run_id": r}) + "\n" for t, r in runs))

    queued = runctl(native, "bulk-cancel", str(targets), "--wait", "--json")
    assert queued.returncode == 0, queued.stdout[-2000:] + queued.stderr[-2000:]
    record = json.loads(queued.stdout.strip().splitlines()[-1])  # the finished bulk record
    assert record["queued"] == RUNS
    assert record["results"] == {"cancelled": RUNS}

    audited = runctl(native, "audit", "--json")
    report = json.loads(audited.stdout)
    assert audited.returncode == 0, report
    assert report["accepted"] == report["published"] == RUNS
    assert native.simulator.stats()["cancels_received"] >= RUNS
    # serve: the token whose SHA-256 the shell gave is the admin; no token is refused.
    bulk_id = record["bulk_id"]
    seen = httpx.get(f"{native.serve_url}/v1/bulk/{bulk_id}",
                     headers={"Authorization": f"Bearer {native.token}"}, timeout=10)  # fmt: skip
    assert (seen.status_code, seen.json()["results"]) == (200, {"cancelled": RUNS})
    assert httpx.get(f"{native.serve_url}/v1/bulk/{bulk_id}", timeout=10).status_code == 401
    for children in native.processes.values():
        for child in children:
            child.check_alive()  # beat and the notifier came up with the file's settings too

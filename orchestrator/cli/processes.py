"""The long-running processes: a worker, beat, the fleet's metrics, the simulator, and
the demo."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.console import err, get_settings, out


def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs in flight at once (default RUNCTL_WORKER_CONCURRENCY).")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option(help="Log level (default RUNCTL_LOG_LEVEL).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Node name, NAME@host (default: celery@hostname).")
    ] = None,
) -> None:
    """Start a worker: one process keeps many cancellations in flight (gevent pool)."""
    from orchestrator.service.connections import check_workers_can_start, load_connections

    settings = get_settings()
    check_workers_can_start(load_connections(settings), os.environ)
    slots = concurrency or settings.worker_concurrency
    # The worker sizes its HTTP pool from this setting: keep it equal to the pool's slots.
    os.environ["RUNCTL_WORKER_CONCURRENCY"] = str(slots)
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.main", "worker",
        "--pool", "gevent",
        "--concurrency", str(slots),
        "--queues", settings.queue_name,
        "--loglevel", loglevel or settings.log_level,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if name:
        argv += ["--hostname", name]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with the worker


def beat() -> None:
    """Start Celery beat: it sends one enforcement pass every RUNCTL_ENFORCE_INTERVAL_S."""
    schedule = Path(tempfile.gettempdir()) / f"runctl-beat-{os.getpid()}"
    argv = [sys.executable, "-m", "celery", "-A", "workers.main", "beat",
            "--schedule", str(schedule), "--loglevel", get_settings().log_level]  # fmt: skip
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with beat


def metrics(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 9460,
    targets: Annotated[
        bool,
        typer.Option(
            "--targets",
            help="Print the live workers' metrics endpoints (Prometheus file_sd JSON) and exit.",
        ),
    ] = False,
) -> None:
    """Serve the fleet's gauges on /metrics (workers alive, jobs in flight, queue depth and
    age, bulk jobs, dead letters, alerts), read from Redis at each scrape, until stopped."""
    import threading

    from orchestrator.cli.console import operator_redis
    from orchestrator.metrics import fleet_registry, serve, worker_targets

    settings = get_settings()
    if targets:
        out.print_json(data=worker_targets(operator_redis(), settings))
        return
    taken = serve(fleet_registry(operator_redis(), settings), host=host, port=port)
    if taken is None:
        err.print(f"error: port {port} is in use", markup=False)
        raise typer.Exit(1)
    err.print(f"fleet metrics on http://{host}:{taken}/metrics", markup=False)
    threading.Event().wait()  # the server is a daemon thread: serve until interrupted


def simulator(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    api_key: Annotated[str, typer.Option(help="Bearer key it accepts.")] = "sim-key",
    latency_ms: Annotated[float, typer.Option(help="Added to every response.")] = 0.0,
    error_5xx_rate: Annotated[float, typer.Option(help="Share of 5xx answers, 0..1.")] = 0.0,
    rate_429_rate: Annotated[float, typer.Option(help="Share of 429 answers, 0..1.")] = 0.0,
    retry_after_s: Annotated[float, typer.Option(help="Delay a 429 asks for.")] = 1.0,
    rate_limit_rps: Annotated[
        float | None, typer.Option(help="Requests/s before it answers 429.")
    ] = None,
    cancel_settle_min_s: Annotated[float, typer.Option(help="cancelling->cancelled, min.")] = 0.3,
    cancel_settle_max_s: Annotated[float, typer.Option(help="cancelling->cancelled, max.")] = 1.5,
    run_duration_s: Annotated[
        float | None, typer.Option(help="New runs complete after this; default never.")
    ] = None,
) -> None:
    """Serve a stand-in API of every kind (runs, cancel, faults) for demos and tests."""
    from orchestrator.devkit.simulator import SimulatorConfig, serve

    config = SimulatorConfig(
        api_key=api_key,
        latency_ms=latency_ms,
        error_5xx_rate=error_5xx_rate,
        rate_429_rate=rate_429_rate,
        retry_after_s=retry_after_s,
        rate_limit_rps=rate_limit_rps,
        cancel_settle_min_s=cancel_settle_min_s,
        cancel_settle_max_s=cancel_settle_max_s,
        run_duration_s=run_duration_s,
    )
    root = f"http://{host}:{port}"
    err.print(
        f"simulator on {root}/v1 (openai-assistants, openai-responses), {root}/azure "
        f"(azure-openai-assistants), {root}/foundry (azure-ai-agents), {root}/langgraph "
        "(langgraph); key: the --api-key value",
        markup=False,
    )
    serve(config, host=host, port=port)


def demo(
    runs: Annotated[int, typer.Option(min=1, max=20_000, help="Stuck runs to cancel.")] = 200,
) -> None:
    """The whole thing on this machine: Redis, simulator, a worker, a bulk cancellation."""
    from orchestrator.cli.demo import run_demo

    raise typer.Exit(run_demo(runs=runs, console=out))

"""`runctl serve`: the HTTP API and the dashboard, on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.console import get_settings, out


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json) and the dashboard (/)."""
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.store.client import redis_client
    from workers.producer import Producer

    settings = get_settings()
    # Server-Sent Events each hold a connection while they wait: a roomy pool that fails
    # fast (a request should answer 503, not hang through a Redis restart).
    client = redis_client(settings, max_connections=256, retries=2)
    producer = Producer(settings, client=client)
    app = create_app(settings, producer=producer)
    out.print(f"runctl serve: http://{host}:{port}/ (API at /v1, OpenAPI at /openapi.json)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        producer.close()
        client.close()

"""`runctl serve`: the HTTP API and the dashboard, on uvicorn; `runctl api hash-token`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.cli.console import get_settings, out

api_app = typer.Typer(no_args_is_help=True, help="API tokens.", rich_markup_mode=None)


@api_app.command("hash-token")
def hash_token_command() -> None:
    """Print the sha256 to configure for a token read from stdin (or typed, hidden)."""
    from orchestrator.core.access import hash_token
    from orchestrator.core.errors import InvalidInput

    token = typer.prompt("token", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    token = token.strip()
    if not token:
        raise InvalidInput("token", "must not be empty")
    out.print(hash_token(token))


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json) and the dashboard (/)."""
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.api.context import load_tokens
    from orchestrator.core.errors import ConfigurationError
    from orchestrator.store.client import redis_client
    from workers.producer import Producer

    settings = get_settings()
    tokens = load_tokens(settings)
    if not len(tokens):
        raise ConfigurationError(
            "no API token configured: add [[api.tokens]] (name, role, sha256) to runctl.toml "
            "or set RUNCTL_API_TOKENS_JSON; `runctl api hash-token` makes a sha256"
        )
    # Server-Sent Events each hold a connection while they wait: a roomy pool that fails
    # fast (a request should answer 503, not hang through a Redis restart).
    client = redis_client(settings, max_connections=256, retries=2)
    producer = Producer(settings, client=client)
    app = create_app(settings, producer=producer, tokens=tokens)
    out.print(f"runctl serve: http://{host}:{port}/ (API at /v1, OpenAPI at /openapi.json)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        producer.close()
        client.close()

"""`runctl serve`'s app on uvicorn in a thread of the test process, over a real Redis and
the deployment's real workers; tokens for each role."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from orchestrator.api import create_app
from orchestrator.core.access import ApiToken, Role, Tokens, hash_token
from orchestrator.core.settings import Settings
from orchestrator.store.client import redis_client
from tests.integration.harness import ISSUED_KEYS, wait_for
from workers.producer import Producer

TOKENS = {"viewer": "tok-viewer-1", "operator": "tok-operator-1", "admin": "tok-admin-1"}
"""Test tokens by role name (each token's name is `<role>-bot`)."""
ISSUED_KEYS.extend(TOKENS.values())  # the session's last check: no token in Redis or a log


def test_tokens() -> Tokens:
    return Tokens(
        [
            ApiToken(name=f"{role}-bot", role=Role.parse(role), sha256=hash_token(token))
            for role, token in TOKENS.items()
        ]
    )


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass(frozen=True)
class Served:
    base_url: str
    producer: Producer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(settings: Settings, **overrides: object) -> Iterator[Served]:
    """The app on a free port until the block ends."""
    settings = settings.model_copy(update=overrides)
    client = redis_client(settings, max_connections=64, retries=2)
    producer = Producer(settings, client=client)
    app = create_app(settings, producer=producer, tokens=test_tokens())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout_s=20, what="uvicorn to start")
        yield Served(f"http://127.0.0.1:{port}", producer)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        producer.close()
        client.close()

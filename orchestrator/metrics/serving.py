"""Serving a registry's `/metrics` over HTTP from this process (prometheus-client's own
server, in a daemon thread: a greenlet under the worker's gevent patching)."""

from __future__ import annotations

import errno
import logging

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


def serve(registry: CollectorRegistry, *, host: str, port: int, tries: int = 1) -> int | None:
    """Serve `registry` on the first free port of `port` .. `port + tries - 1`: several
    workers on one host given the same port each take the next one free (port 0: one the
    system chooses). Returns the port taken, or None (and logs why) when every one was in
    use."""
    for candidate in range(port, port + max(1, tries)):
        try:
            server, _ = start_http_server(candidate, addr=host, registry=registry)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        taken = int(server.server_port)  # `port` 0: the one the system chose
        log.info("metrics on http://%s:%d/metrics", host, taken)
        return taken
    log.error("no free port for metrics in %d..%d; serving none", port, port + tries - 1)
    return None

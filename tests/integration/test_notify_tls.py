"""An https target is reached at the address that was checked, with TLS verified for the
name: a real TLS server on 127.0.0.1 with a certificate for `hooks.test` (a name no DNS
knows, so only the pinned address can reach it)."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trustme

from orchestrator.notify.sender import Sender

pytestmark = pytest.mark.integration


class Handler(http.server.BaseHTTPRequestHandler):
    hosts: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        Handler.hosts.append(self.headers["host"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def tls_server(ca: trustme.CA, name: str) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(name).configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def sender_trusting(ca: trustme.CA) -> Sender:
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return Sender(allow_hosts=["hooks.test"], timeout_s=5, max_response_bytes=4096,
                  resolve=lambda host, port: ["127.0.0.1"], verify=client_context)  # fmt: skip


def test_https_goes_to_the_pinned_address_with_the_name_verified() -> None:
    ca = trustme.CA()
    Handler.hosts.clear()
    with tls_server(ca, "hooks.test") as port:
        sender = sender_trusting(ca)
        try:
            attempt = sender.post("s", f"https://hooks.test:{port}/in", {}, b"{}")
        finally:
            sender.close()
    assert attempt.delivered, attempt.error
    assert Handler.hosts == [f"hooks.test:{port}"]


def test_a_certificate_for_another_name_is_refused() -> None:
    ca = trustme.CA()
    Handler.hosts.clear()
    with tls_server(ca, "other.test") as port:
        sender = sender_trusting(ca)
        try:
            attempt = sender.post("s", f"https://hooks.test:{port}/in", {}, b"{}")
        finally:
            sender.close()
    assert not attempt.delivered
    assert attempt.retry  # a TLS failure is a connection failure: tried again later
    assert attempt.error == "ConnectError (hooks.test)"
    assert Handler.hosts == []

"""A TLS front for a plain Redis, so that `rediss://` is tested end to end.

The embedded redis-server is built without TLS; this proxy terminates real TLS (a test CA
made by trustme) and forwards the bytes to it, as a cloud Redis's TLS endpoint would.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import trustme


class TlsProxy:
    """Listens on 127.0.0.1 with TLS; forwards every connection to `target_port` in clear."""

    def __init__(self, target_port: int, directory: Path) -> None:
        self._target_port = target_port
        ca = trustme.CA()
        self.ca_path = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        self.handshakes = 0  # connections that completed a TLS handshake
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TlsProxy:
        threading.Thread(target=self._accept, name="tls-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                plain, _ = self._listener.accept()
            except OSError:
                return  # stopped
            threading.Thread(target=self._serve, args=(plain,), daemon=True).start()

    def _serve(self, plain: socket.socket) -> None:
        try:
            client = self._context.wrap_socket(plain, server_side=True)
        except (ssl.SSLError, OSError):
            plain.close()  # the client did not trust us, or went away
            return
        self.handshakes += 1
        upstream = socket.create_connection(("127.0.0.1", self._target_port))
        with self._lock:
            self._open += [client, upstream]
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()

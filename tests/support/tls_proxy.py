"""Loopback HTTPS in front of a plain-HTTP server, with certificates from a test CA (``trustme``).

``TlsProxy`` terminates TLS (optionally demanding a client certificate: mutual TLS) and relays the bytes to
an upstream port, such as the test MLflow server's. Without a TLS context it is a plain counting relay.
It counts what reached it, so tests can tell one attempt from many:

- ``connections``: TCP connections accepted (each retry of a failed handshake is a new one);
- ``handshake_failures``: TLS handshakes that failed on the server side;
- ``requests``: HTTP request lines relayed upstream.

``ScriptedServer`` is a plain-HTTP upstream that answers with a script of statuses (then 200 ``{}``).
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme

_REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|PATCH|DELETE|HEAD) /\S* HTTP/1\.[01]\r\n")


@dataclass(frozen=True)
class Pki:
    """A test CA and files made from it: the CA bundle, a server certificate, client certificates."""

    ca: trustme.CA
    ca_path: Path
    folder: Path

    @classmethod
    def make(cls, folder: Path) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca_path = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca, ca_path, folder)

    def server_context(
        self, *names: str, client_ca: trustme.CA | None = None, require_client_cert: bool = False
    ) -> ssl.SSLContext:
        """A server context for ``names`` (default loopback); ``require_client_cert`` makes it mutual TLS."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            (client_ca or self.ca).configure_trust(ctx)
        return ctx

    def client_pem(self, name: str = "client@example.test") -> Path:
        """One PEM file with the client's private key and certificate chain: the form MLflow reads."""
        path = self.folder / f"client-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.pem"
        self.ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(str(path))
        return path


class TlsProxy:
    """Accepts on a free loopback port; TLS (or not) towards the client, plain TCP to ``upstream_port``."""

    def __init__(self, upstream_port: int | None, context: ssl.SSLContext | None) -> None:
        self.upstream_port = upstream_port
        self.context = context
        self.connections = 0
        self.handshake_failures = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, name=f"tls-proxy-{self.port}", daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.context is not None else 'http'}://127.0.0.1:{self.port}"

    def reset_counts(self) -> None:
        with self._lock:
            self.connections = self.handshake_failures = self.requests = 0

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._handle, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        conn: socket.socket = client
        try:
            if self.context is not None:
                tls = self.context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
                try:
                    tls.do_handshake()
                except (ssl.SSLError, OSError):
                    with self._lock:
                        self.handshake_failures += 1
                    tls.close()
                    return
                conn = tls
            if self.upstream_port is None:
                conn.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            client.close()
            return
        self._relay(conn, upstream)

    def _relay(self, conn: socket.socket, upstream: socket.socket) -> None:
        """Both directions in one thread: an ``SSLSocket`` must not be read and written from two threads at
        once (OpenSSL's state is shared), which corrupts records now and then under load."""
        try:
            while True:
                readable, _, _ = select.select([conn, upstream], [], [], 30)
                if not readable:
                    return
                for src in readable:
                    dst = upstream if src is conn else conn
                    data = src.recv(65536)
                    while isinstance(src, ssl.SSLSocket) and src.pending():
                        data += src.recv(src.pending())  # decrypted already: select would not see it
                    if not data:
                        return
                    if src is conn:
                        with self._lock:
                            self.requests += len(_REQUEST_LINE.findall(data))
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (conn, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._accept.join(timeout=5)

    def __enter__(self) -> TlsProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ScriptedServer:
    """Plain HTTP on loopback: answers each request with the next status of ``statuses``, then 200 ``{}``."""

    def __init__(self, statuses: Iterable[int]) -> None:
        self.statuses = list(statuses)
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with server._lock:
                    server.requests += 1
                    status = server.statuses.pop(0) if server.statuses else 200
                body = b"{}" if status == 200 else b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

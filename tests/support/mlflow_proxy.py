"""A loopback HTTP proxy in front of the MLflow server that records every request the provider sends.

Why a proxy rather than comparing the server's state before and after: a state comparison cannot see
writes that cancel out (a run created and then rolled back, a tag set to the value it already had, a run
deleted and restored), and it says nothing about *order*. The proxy sees each request as it happens, so
"a preview sends nothing", "an unchanged ``up`` writes nothing", "the replacement is created before the
old run is deleted" and "an append logs only the new points" are checked on the wire. It only counts what
is sent through it: tests point the provider host (``MLFLOW_TRACKING_URI``) at it, and each test also
proves that the steps which must write do show up here, so a zero can be trusted.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length", "content-encoding", "host", "accept-encoding", "server", "date",
}  # fmt: skip
_READ_ONLY_POSTS = ("/runs/search", "/experiments/search", "/metrics/get-history-bulk-interval")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    """Path without the query string, e.g. ``/api/2.0/mlflow/runs/log-batch``."""
    body: Any
    """The JSON body (None for GET)."""
    status: int
    """The status the client got; 0 when it got no answer."""
    fault: str | None = None
    """The fault a ``FaultProxy`` injected instead of (or after) forwarding, if any."""
    body_bytes: int = 0
    wire_bytes: int = 0
    """Request line + headers + body, as received from the client."""
    response_bytes: int = 0

    @property
    def reached_server(self) -> bool:
        """Forwarded to the real server, whether or not the answer came back."""
        return self.fault is None or self.fault.endswith("after")

    @property
    def endpoint(self) -> str:
        """``runs/log-batch``, ``runs/create`` …: the path after ``/mlflow/``."""
        return self.path.split("/mlflow/", 1)[-1]

    @property
    def is_write(self) -> bool:
        return self.method != "GET" and not self.path.endswith(_READ_ONLY_POSTS)

    @property
    def run_id(self) -> str | None:
        body = self.body if isinstance(self.body, dict) else {}
        return body.get("run_id") or body.get("run_uuid")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a killed CLI) is part of the test, not an error to print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RecordingProxy:
    """``with RecordingProxy(upstream) as proxy:`` … ``proxy.url``; ``proxy.requests``; ``proxy.mark()``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self.connections = 0
        """Client connections accepted: how well the provider reuses its pool."""
        self._client = httpx.Client(base_url=self.upstream, timeout=60.0)
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="mlflow-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def mark(self) -> int:
        """A position; ``since(mark)`` returns the requests recorded after it."""
        with self._lock:
            return len(self._requests)

    def since(self, mark: int) -> list[Request]:
        with self._lock:
            return self._requests[mark:]

    def writes_since(self, mark: int) -> list[Request]:
        return [r for r in self.since(mark) if r.is_write]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        """Hook: ``(fault, status, body, headers)`` to answer without forwarding (status 0: no answer)."""
        return None

    def _drop_answer(self, endpoint: str) -> bool:
        """Hook: forward, then drop the answer (the server has acted, the client cannot know)."""
        return False

    def _answer_after(self, endpoint: str) -> tuple[str, int, bytes, dict[str, str]] | None:
        """Hook: forward, then give this answer instead of the server's (it has acted, and says it failed)."""
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer goes out as headers, then body: with Nagle's algorithm the body waited for the client's
            # delayed ACK, about 40 ms a request through the proxy.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def _answer(self, status: int, content: bytes, headers: Any) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = body.decode(errors="replace")
                path = self.path.split("?", 1)[0]
                endpoint = path.split("/mlflow/", 1)[-1]
                head = len(self.requestline) + 2 + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + 2
                sizes = {"body_bytes": len(body), "wire_bytes": head + len(body)}
                injected = proxy._intercept(endpoint, self.headers)
                if injected is not None:
                    fault, status, content, extra = injected
                    proxy._record(Request(self.command, path, parsed, status, fault, **sizes))
                    if status:
                        self._answer(status, content, extra)
                    else:
                        self.close_connection = True  # no answer at all: the client sees the connection end
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    upstream = proxy._client.request(self.command, self.path, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.send_error(502, f"upstream failed: {exc}")
                    return
                if proxy._drop_answer(endpoint):
                    proxy._record(Request(self.command, path, parsed, 0, "drop-after", **sizes))
                    self.close_connection = True
                    return
                instead = proxy._answer_after(endpoint)
                if instead is not None:
                    fault, status, content, extra = instead
                    proxy._record(Request(self.command, path, parsed, status, fault, **sizes))
                    self._answer(status, content, extra)
                    return
                proxy._record(
                    Request(self.command, path, parsed, upstream.status_code, None, **sizes,
                            response_bytes=len(upstream.content))
                )  # fmt: skip
                self._answer(upstream.status_code, upstream.content, upstream.headers)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

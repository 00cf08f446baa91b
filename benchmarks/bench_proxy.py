"""A counting HTTP proxy on loopback in front of the MLflow server: requests per endpoint and bytes sent.

Only the counting runs go through it (it adds a hop); the timed runs talk to the server directly.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length", "content-encoding", "host", "accept-encoding", "server", "date",
}  # fmt: skip


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    """Without the query string, e.g. ``/api/2.0/mlflow/runs/log-batch``."""
    body_bytes: int
    wire_bytes: int
    """Request line + headers + body, as received from the client."""
    response_bytes: int
    status: int

    @property
    def endpoint(self) -> str:
        return self.path.split("/mlflow/", 1)[-1]


class Tally:
    """What a slice of traffic amounted to."""

    def __init__(self, seen: list[Seen]) -> None:
        self.seen = seen

    @property
    def count(self) -> int:
        return len(self.seen)

    @property
    def body_bytes(self) -> int:
        return sum(s.body_bytes for s in self.seen)

    @property
    def wire_bytes(self) -> int:
        return sum(s.wire_bytes for s in self.seen)

    def by_endpoint(self) -> Counter[str]:
        return Counter(s.endpoint for s in self.seen)

    def without_final_get(self) -> Tally:
        if self.seen and self.seen[-1].endpoint == "runs/get":
            return Tally(self.seen[:-1])
        return self

    def describe(self) -> str:
        return ", ".join(f"{k} x{n}" for k, n in sorted(self.by_endpoint().items())) or "none"

    @property
    def failed(self) -> list[Seen]:
        return [s for s in self.seen if s.status >= 400]


class CountingProxy:
    """``with CountingProxy(upstream) as proxy:`` … ``mark = proxy.mark()`` … ``proxy.since(mark)``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._client = httpx.Client(base_url=self.upstream, timeout=120.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mark(self) -> int:
        with self._lock:
            return len(self._seen)

    def since(self, mark: int) -> Tally:
        with self._lock:
            return Tally(self._seen[mark:])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                head = len(self.requestline) + 2 + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + 2
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    upstream = proxy._client.request(self.command, self.path, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.send_error(502, f"upstream failed: {exc}")
                    return
                seen = Seen(
                    self.command,
                    self.path.split("?", 1)[0],
                    len(body),
                    head + len(body),
                    len(upstream.content),
                    upstream.status_code,
                )
                with proxy._lock:
                    proxy._seen.append(seen)
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

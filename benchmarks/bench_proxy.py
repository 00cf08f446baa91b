"""A counting HTTP proxy on loopback in front of the MLflow server: requests per endpoint and bytes sent.

Only the counting runs go through it (it adds a hop); the timed runs talk to the server directly.
"""

from __future__ import annotations

from collections import Counter
from http.server import BaseHTTPRequestHandler

import bench_common  # noqa: F401 - sets the environment and sys.path first

from support.mlflow_proxy import RecordingProxy, Request

Seen = Request
"""One request as the proxy saw it (method, path, status, body/wire/response bytes)."""


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


class CountingProxy(RecordingProxy):
    """``with CountingProxy(upstream) as proxy:`` … ``mark = proxy.mark()`` … ``proxy.tally(mark)``.

    Its handler sets TCP_NODELAY on each client connection: it writes an answer's headers and its body in two
    sends, and with Nagle's algorithm on, the body waited for the client's delayed ACK, about 40 ms per request
    (52 ms a request through the proxy against 7 ms direct, 8 to 12 ms with it set)."""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler

    def tally(self, mark: int) -> Tally:
        return Tally(self.since(mark))

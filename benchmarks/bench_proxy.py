"""A counting HTTP proxy on loopback in front of the MLflow server: requests per endpoint and bytes sent.

Only the counting runs go through it (it adds a hop); the timed runs talk to the server directly.
"""

from __future__ import annotations

from collections import Counter

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
    """``with CountingProxy(upstream) as proxy:`` … ``mark = proxy.mark()`` … ``proxy.tally(mark)``. (Its handler
    sets TCP_NODELAY, as every proxy of the tests does: with Nagle's algorithm, each answer's body waited about
    40 ms for the client's delayed ACK.)"""

    def tally(self, mark: int) -> Tally:
        return Tally(self.since(mark))

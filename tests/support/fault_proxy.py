"""The recording proxy, failing chosen requests on purpose.

Faults: an HTTP status (429 with Retry-After, 500, 503) returned without forwarding; a connection dropped
before the request reaches the server; and the hard cases, where the server has applied the request and
the client is told otherwise: the connection dropped after it (``drop-after``), or a 500 in place of the
server's answer (``500-after``). It can also demand a bearer token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from .mlflow_proxy import RecordingProxy

Fault = Literal["429", "500", "503", "drop-before", "drop-after", "500-after", "call"]
"""``call``: run an action (a kill, a server stop) when the request arrives, then forward it (see ``when``)."""
ANY = "*"
"""The endpoint of a rule for whichever request comes: ``when(ANY, kill, nth=2)`` acts at the second request
of the step, whatever it is."""
_ERROR_CODES = {"429": "REQUEST_LIMIT_EXCEEDED", "500": "INTERNAL_ERROR", "503": "TEMPORARILY_UNAVAILABLE"}


@dataclass
class _Rule:
    endpoint: str
    fault: Fault
    nth: int
    times: int
    retry_after: float | None
    action: Callable[[], object] | None = None
    seen: int = 0
    fired: int = 0


class FaultProxy(RecordingProxy):
    def __init__(self, upstream: str, *, require_token: str | None = None) -> None:
        self._rules: list[_Rule] = []
        self._rules_lock = threading.Lock()
        self.require_token = require_token
        super().__init__(upstream)

    def fail(
        self, endpoint: str, fault: Fault, *, nth: int = 1, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Fail the ``nth`` request to ``endpoint`` (e.g. ``runs/log-batch``) from now, ``times`` times."""
        with self._rules_lock:
            self._rules.append(_Rule(endpoint, fault, nth, times, retry_after))

    def when(self, endpoint: str, action: Callable[[], object], *, nth: int = 1) -> None:
        """Call ``action`` in the proxy's thread when the ``nth`` request to ``endpoint`` (or to any, ``ANY``) from
        now arrives, then forward it: a process killed or a server stopped while that request is in flight."""
        with self._rules_lock:
            self._rules.append(_Rule(endpoint, "call", nth, 1, None, action))

    def clear(self) -> None:
        """Forget the rules and the requests recorded so far."""
        with self._rules_lock:
            self._rules.clear()
        with self._lock:
            self._requests.clear()

    def fired(self) -> int:
        return sum(self.fired_by_fault().values())

    def fired_by_fault(self) -> dict[str, int]:
        """How many times each kind of fault fired since the last ``clear``."""
        out: dict[str, int] = {}
        with self._rules_lock:
            for rule in self._rules:
                out[rule.fault] = out.get(rule.fault, 0) + rule.fired
        return out

    def reached_server(self, endpoint: str) -> list[Any]:
        """Bodies of the requests to ``endpoint`` that the server received (answered or not)."""
        return [r.body for r in self.requests if r.endpoint == endpoint and r.reached_server]

    @contextmanager
    def faults(self, *rules: tuple[str, Fault]) -> Iterator[FaultProxy]:
        """Inject each fault once (a 429 says Retry-After: 1) on a fresh log; clear both afterwards."""
        self.clear()
        for endpoint, fault in rules:
            self.fail(endpoint, fault, retry_after=1.0 if fault == "429" else None)
        try:
            yield self
        finally:
            self.clear()

    def _pick(self, endpoint: str, faults: tuple[str, ...]) -> _Rule | None:
        with self._rules_lock:
            for rule in self._rules:
                if rule.endpoint in (endpoint, ANY) and rule.fault in faults and rule.fired < rule.times:
                    rule.seen += 1
                    if rule.seen >= rule.nth:
                        rule.fired += 1
                        return rule
            return None

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        if self.require_token and headers.get("Authorization") != f"Bearer {self.require_token}":
            body = {"error_code": "UNAUTHENTICATED", "message": "invalid token"}
            return "auth", 401, json.dumps(body).encode(), {"Content-Type": "application/json"}
        called = self._pick(endpoint, ("call",))
        if called is not None and called.action is not None:
            called.action()
        rule = self._pick(endpoint, ("429", "500", "503", "drop-before"))
        if rule is None:
            return None
        if rule.fault == "drop-before":
            return "drop-before", 0, b"", {}
        extra = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        body = {"error_code": _ERROR_CODES[rule.fault], "message": "injected"}
        return rule.fault, int(rule.fault), json.dumps(body).encode(), {"Content-Type": "application/json", **extra}

    def _drop_answer(self, endpoint: str) -> bool:
        return self._pick(endpoint, ("drop-after",)) is not None

    def _answer_after(self, endpoint: str) -> tuple[str, int, bytes, dict[str, str]] | None:
        if self._pick(endpoint, ("500-after",)) is None:
            return None
        body = {"error_code": "INTERNAL_ERROR", "message": "injected after the server acted"}
        return "500-after", 500, json.dumps(body).encode(), {"Content-Type": "application/json"}


class Throttling(RecordingProxy):
    """Answers every other write with 429 and Retry-After, as a busy Databricks workspace does."""

    def __init__(self, upstream: str, retry_after: float) -> None:
        self.retry_after = retry_after
        self.throttled = 0
        self._count = 0
        self.delay: dict[str, float] = {}
        super().__init__(upstream)

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        time.sleep(self.delay.get(endpoint, 0.0))
        if not self.retry_after or endpoint == "runs/search" or endpoint.startswith("runs/get"):
            return None
        with self._lock:
            self._count += 1
            throttle = self._count % 2 == 1
            self.throttled += throttle
        if not throttle:
            return None
        body = json.dumps({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}).encode()
        return "429", 429, body, {"Content-Type": "application/json", "Retry-After": str(self.retry_after)}

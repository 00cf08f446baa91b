"""A loopback proxy in front of the real MLflow server that fails chosen requests on purpose.

Faults: an HTTP status (429 with Retry-After, 500, 503) returned without forwarding; a connection dropped
before the request reaches the server; and the hard case, a connection dropped *after* the server has
applied the request, so the client cannot know whether it took effect. It also counts the client
connections it accepts, so tests can see whether the provider reuses one pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

Fault = Literal["429", "500", "503", "drop-before", "drop-after"]
_NOT_FORWARDED = ("401", "429", "500", "503", "drop-before")
_SKIP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass
class _Rule:
    endpoint: str
    fault: Fault
    nth: int
    times: int
    retry_after: float | None
    seen: int = 0
    fired: int = 0


class FaultProxy:
    def __init__(self, upstream: str, *, require_token: str | None = None) -> None:
        self._upstream = httpx.Client(base_url=upstream, timeout=60)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.log: list[tuple[str, str, Any]] = []
        """(endpoint, what happened, JSON body) per request: the status, or the fault injected."""
        self.connections = 0
        self.require_token = require_token
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, endpoint: str, fault: Fault, *, nth: int = 1, times: int = 1,
             retry_after: float | None = None) -> None:
        """Fail the ``nth`` request to ``endpoint`` (e.g. ``runs/log-batch``) from now, ``times`` times."""
        with self._lock:
            self._rules.append(_Rule(endpoint, fault, nth, times, retry_after))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.log.clear()

    def fired(self) -> int:
        with self._lock:
            return sum(r.fired for r in self._rules)

    def reached_server(self, endpoint: str) -> list[Any]:
        """Bodies of the requests to ``endpoint`` that the server received (answered or not)."""
        with self._lock:
            return [body for ep, what, body in self.log if ep == endpoint and what not in _NOT_FORWARDED]

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

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def _pick(self, endpoint: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.endpoint == endpoint and rule.fired < rule.times:
                    rule.seen += 1
                    if rule.seen >= rule.nth:
                        rule.fired += 1
                        return rule
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def _respond(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True  # no answer at all: the client sees the connection end

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                endpoint = self.path.split("?", 1)[0].split("/mlflow/", 1)[-1]
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = None

                def note(what: str) -> None:
                    with proxy._lock:
                        proxy.log.append((endpoint, what, parsed))

                if proxy.require_token and self.headers.get("Authorization") != f"Bearer {proxy.require_token}":
                    note("401")
                    self._respond(401, b'{"error_code": "UNAUTHENTICATED", "message": "invalid token"}',
                                  {"Content-Type": "application/json"})
                    return
                rule = proxy._pick(endpoint)
                if rule and rule.fault == "drop-before":
                    note("drop-before")
                    self._drop()
                    return
                if rule and rule.fault in ("429", "500", "503"):
                    note(rule.fault)
                    extra = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
                    code = {"429": "REQUEST_LIMIT_EXCEEDED", "500": "INTERNAL_ERROR", "503": "TEMPORARILY_UNAVAILABLE"}
                    payload = f'{{"error_code": "{code[rule.fault]}", "message": "injected"}}'.encode()
                    self._respond(int(rule.fault), payload, {"Content-Type": "application/json", **extra})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
                upstream = proxy._upstream.request(self.command, self.path, content=body, headers=headers)
                if rule and rule.fault == "drop-after":
                    note("drop-after")  # the server has acted; the answer is lost
                    self._drop()
                    return
                note(str(upstream.status_code))
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _SKIP_HEADERS}
                self._respond(upstream.status_code, upstream.content, kept)

            do_GET = do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

"""HTTP exchange with one server: pooled connections, JSON envelopes, error mapping, retries.

One ``httpx.Client`` per base URL, created on first use and shared by all threads of the provider host.
Nothing here is picklable on purpose: it lives only in the host process, built after ``configure``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from typing import Any

import httpx

from ._auth import Connection
from ._errors import (
    ApiError,
    BadGateway,
    EndpointNotFound,
    GatewayTimeout,
    InternalError,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    TransportError,
    map_error,
)
from ._retries import Clock, RetryPolicy, SystemClock, retry_call

log = logging.getLogger("pulumi_mlflow_runs")

USER_AGENT = "pulumi-mlflow-runs/0.1.0"
MAX_CONNECTIONS = 16
"""Per server. The host runs up to 32 calls at once (``_host_pool``); past this many they wait for a
connection instead of opening (and, past the keep-alive pool, closing) one each."""
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


def _retry_idempotent(exc: Exception) -> tuple[bool, float | None]:
    if isinstance(exc, TooManyRequests):
        return True, exc.retry_after
    if isinstance(exc, TransportError):
        return True, None
    if isinstance(exc, (InternalError, ServiceUnavailable, BadGateway, GatewayTimeout)):
        return True, exc.retry_after
    return False, None


def _no_retry(exc: Exception) -> tuple[bool, float | None]:
    return False, None


class Transport:
    """Sends one JSON request to one server and returns the decoded body, or raises from the tree."""

    def __init__(
        self,
        connection: Connection,
        client: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.connection = connection
        self.policy = policy or RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        self._client = client

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
    ) -> dict[str, Any]:
        """One API call. Idempotent ones are retried here; the others are sent once, and the caller
        (``_exactly_once``) decides what to send again after finding out what the server did."""
        content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode() if body is not None else None
        return retry_call(
            lambda: self._send(method, path, content, params),
            should_retry=_retry_idempotent if idempotent else _no_retry,
            policy=self.policy,
            clock=self.clock,
        )

    def _send(self, method: str, path: str, content: bytes | None, params: dict[str, Any] | None) -> dict[str, Any]:
        endpoint = f"{method} {path}"
        headers = {"Content-Type": "application/json"} if content is not None else None
        started = time.perf_counter()
        try:
            resp = self._client.request(
                method, path, content=content, params=params, headers=headers, auth=self.connection.auth
            )
        except httpx.ConnectError as exc:
            raise TransportError(
                f"cannot connect to {self.connection.base_url} ({exc})", endpoint=endpoint, sent=False
            ) from exc
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            raise RequestTimeout(f"timed out ({type(exc).__name__})", endpoint=endpoint, sent=sent) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"connection failed ({type(exc).__name__}: {exc})", endpoint=endpoint, sent=True
            ) from exc
        log.debug("%s -> %s in %.1f ms", endpoint, resp.status_code, (time.perf_counter() - started) * 1e3)
        if resp.is_success:
            if not resp.content:
                return {}
            try:
                data = resp.json()
            except ValueError as exc:
                raise ApiError(
                    status=resp.status_code,
                    error_code="INVALID_RESPONSE",
                    message="the answer is not JSON",
                    endpoint=endpoint,
                ) from exc
            return data if isinstance(data, dict) else {}
        raise self._error(resp, endpoint)

    def _error(self, resp: httpx.Response, endpoint: str) -> ApiError:
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        try:
            envelope = resp.json()
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and "error_code" in envelope:
            return map_error(
                status=resp.status_code,
                error_code=str(envelope.get("error_code")),
                message=str(envelope.get("message", ""))[:2000],
                endpoint=endpoint,
                retry_after=retry_after,
            )
        if resp.status_code == 404:
            return EndpointNotFound(
                status=404,
                error_code="ENDPOINT_NOT_FOUND",
                endpoint=endpoint,
                retry_after=None,
                message=f"{self.connection.base_url} does not offer this endpoint",
            )
        text = resp.text.strip().replace("\n", " ")[:300]
        return map_error(
            status=resp.status_code,
            error_code=f"HTTP_{resp.status_code}",
            message=text or resp.reason_phrase,
            endpoint=endpoint,
            retry_after=retry_after,
        )


class TransportPool:
    """One connection pool (``httpx.Client``) per server, shared by threads; built on first use.

    Credentials stay on the ``Connection`` and go with each request, so two ways of naming the same
    server share one pool.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}
        self._policy = policy
        self._clock = clock
        self._http_transport = http_transport

    def get(self, connection: Connection) -> Transport:
        with self._lock:
            client = self._clients.get(connection.base_url)
            if client is None:
                client = httpx.Client(
                    base_url=connection.base_url,
                    transport=self._http_transport,
                    timeout=DEFAULT_TIMEOUT,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
                    follow_redirects=False,
                )
                self._clients[connection.base_url] = client
        return Transport(connection, client, policy=self._policy, clock=self._clock)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

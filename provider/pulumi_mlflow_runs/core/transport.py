"""HTTP exchange with one server: pooled connections, JSON envelopes, error mapping, retries.

One ``httpx.Client`` per base URL, created on first use and shared by all threads of the provider host.
Nothing here is picklable on purpose: it lives only in the host process, built after ``configure``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.errors import (
    ApiError,
    BadGateway,
    ConnectionSetupError,
    EndpointNotFound,
    GatewayTimeout,
    InternalError,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    TransportError,
    map_error,
)
from pulumi_mlflow_runs.core.retries import Clock, RetryPolicy, SystemClock, retry_call

log = logging.getLogger("pulumi_mlflow_runs")

USER_AGENT = "pulumi-mlflow-runs/0.1.0"
MAX_CONNECTIONS = 16
"""Per server. The host runs up to 32 calls at once (``dynamic.host_pool``); past this many they wait for a
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


def retry_idempotent(exc: Exception) -> tuple[bool, float | None]:
    if isinstance(exc, TooManyRequests):
        return True, exc.retry_after
    if isinstance(exc, TransportError):
        return True, None
    if isinstance(exc, (InternalError, ServiceUnavailable, BadGateway, GatewayTimeout)):
        return True, exc.retry_after
    return False, None


def _no_retry(exc: Exception) -> tuple[bool, float | None]:
    return False, None


# ---- failures below HTTP that no retry can mend ---------------------------------------------------------

_TRANSIENT_SSL = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)
"""A TLS session cut short: as a reset connection, retried."""
_PERMANENT_EAI = {
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY", "EAI_FAIL")
    if hasattr(socket, name)
}
"""``getaddrinfo`` answers that mean "no such name" (``EAI_AGAIN``, a resolver that did not answer, is retried)."""
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED", "UNSUPPORTED_CERTIFICATE", "ACCESS_DENIED",
)  # fmt: skip
_NO_COMMON_TLS = (
    "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
    "PROTOCOL_VERSION", "HANDSHAKE_FAILURE", "VERSION_TOO_LOW", "INAPPROPRIATE_FALLBACK",
)  # fmt: skip
"""Handshake alerts that say the two sides have no TLS version or cipher in common: no retry mends them."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _permanent(exc: httpx.TransportError, connection: Connection, endpoint: str) -> ConnectionSetupError | None:
    """The failure as a ``ConnectionSetupError`` when retrying cannot help, else None."""
    base = connection.base_url
    hostname = urlsplit(base).hostname or base
    tls = connection.tls
    keys = connection.keys
    server_cert = f"env MLFLOW_TRACKING_SERVER_CERT_PATH or stack config '{keys.server_cert_path}'"
    client_cert = f"env MLFLOW_TRACKING_CLIENT_CERT_PATH or stack config '{keys.client_cert_path}'"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = (cause.verify_message or cause.reason or "verification failed").rstrip(".")
            trust = tls.describe_trust() if tls is not None else "the default trust store (certifi)"
            if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
                fix = f"connect by a name the certificate is issued for (in {connection.source}), or reissue it"
            else:
                fix = (
                    f"if the server uses a private CA, set {server_cert} to that CA's certificate (PEM); "
                    "if it should be publicly trusted, fix the server's certificate chain"
                )
            return ConnectionSetupError(
                f"the TLS certificate of {base} does not verify ({detail}; checked against {trust}). To fix: {fix}",
                endpoint=endpoint,
                kind="certificate",
            )
        if isinstance(cause, _TRANSIENT_SSL):
            return None
        if isinstance(cause, ssl.SSLError):
            reason = str(cause.reason or cause.strerror or type(cause).__name__)
            if any(alert in reason.upper() for alert in _CLIENT_CERT_ALERTS):
                if tls is None or tls.client_cert_path is None:
                    what = f"{base} requires a client certificate (mutual TLS) and none is configured ({reason})"
                    fix = f"set {client_cert} to one PEM file holding the client certificate and its private key"
                else:
                    what = (
                        f"{base} rejected the client certificate {tls.client_cert_path!r} "
                        f"(from {tls.client_cert_source}): {reason}"
                    )
                    fix = "use a client certificate issued by a CA the server trusts, valid today, for this server"
                return ConnectionSetupError(f"{what}. To fix: {fix}", endpoint=endpoint, kind="client-certificate")
            if "WRONG_VERSION_NUMBER" in reason.upper() or "RECORD_LAYER" in reason.upper():
                fix = (
                    "the port does not speak TLS: if the server serves plain http, use an http:// URL in "
                    f"{connection.source}"
                )
            elif any(words in reason.upper() for words in _NO_COMMON_TLS):
                fix = (
                    "the server and this client share no TLS version or cipher: the server must offer TLS 1.2 or later"
                )
            else:
                return None  # another TLS error (a record cut or garbled in transit): retried like a reset
            return ConnectionSetupError(
                f"the TLS handshake with {base} was refused ({reason}). To fix: {fix}",
                endpoint=endpoint,
                kind="handshake",
            )
        if isinstance(cause, socket.gaierror) and cause.errno in _PERMANENT_EAI:
            return ConnectionSetupError(
                f"the host name {hostname!r} of {base} is unknown ({cause.strerror}). To fix: correct the host "
                f"name in {connection.source}",
                endpoint=endpoint,
                kind="hostname",
            )
    return None


def _subject(content: bytes | None, params: dict[str, Any] | None) -> str:
    """`` (experiment '1')`` or `` (run 'abc')`` from the request, to say what a 403 was about."""
    fields: dict[str, Any] = dict(params or {})
    if content:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            fields.update(body)
    for key, noun in (("experiment_id", "experiment"), ("run_id", "run"), ("name", "experiment")):
        value = fields.get(key)
        if isinstance(value, (str, int)) and str(value):
            return f" ({noun} {str(value)[:200]!r})"
    return ""


def transient_error(exc: httpx.TransportError, endpoint: str, target: str) -> TransportError:
    """A failure below HTTP as this package's error, with ``sent``: whether the request may have reached
    ``target`` (then only the caller's knowledge of what the server did may send it again)."""
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"cannot connect to {target} ({exc})", endpoint=endpoint, sent=False)
    if isinstance(exc, httpx.TimeoutException):
        sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        return RequestTimeout(f"timed out ({type(exc).__name__})", endpoint=endpoint, sent=sent)
    return TransportError(f"connection to {target} failed ({type(exc).__name__}: {exc})", endpoint=endpoint, sent=True)


class Transport:
    """Sends one JSON request to one server and returns the decoded body, or raises from the tree."""

    def __init__(
        self,
        connection: Connection,
        client: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        storage: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.connection = connection
        self.policy = policy or RetryPolicy()
        self.clock: Clock = clock or SystemClock()
        self._client = client
        self._storage = storage

    def storage_client(self) -> httpx.Client:
        """The client for cloud storage reached by signed URLs (Databricks run artifacts): it sends no
        credential of this server, and is shared and closed by the ``TransportPool`` that made this transport."""
        if self._storage is None:
            raise RuntimeError("this Transport has no cloud-storage client: make it with TransportPool.get")
        return self._storage()

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
        (``exactly_once``) decides what to send again after finding out what the server did."""
        content = json.dumps(body, allow_nan=False, separators=(",", ":")).encode() if body is not None else None
        return retry_call(
            lambda: self._send(method, path, content, params),
            should_retry=retry_idempotent if idempotent else _no_retry,
            policy=self.policy,
            clock=self.clock,
        )

    def send_bytes(
        self,
        method: str,
        path: str,
        *,
        content: Callable[[], Iterable[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        should_retry: Callable[[Exception], tuple[bool, float | None]] = retry_idempotent,
    ) -> httpx.Response:
        """An idempotent request whose body is not JSON (an artifact file), retried within the deadline.

        ``content`` makes the body anew for each attempt, so a file is streamed from its start every time
        and never held in memory whole. The caller sets ``Content-Length`` for a streamed body.
        """

        def attempt() -> httpx.Response:
            endpoint = f"{method} {path}"
            body = content() if content is not None else None
            resp = self._exchange(endpoint, method=method, path=path, content=body, params=None, headers=headers)
            if resp.is_success:
                return resp
            raise self._error(resp, endpoint)

        return retry_call(attempt, should_retry=should_retry, policy=self.policy, clock=self.clock)

    def _exchange(
        self,
        endpoint: str,
        *,
        method: str,
        path: str,
        content: bytes | Iterable[bytes] | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        """One request and its answer; a failure below HTTP as this package's error."""
        started = time.perf_counter()
        try:
            resp = self._client.request(
                method, path, content=content, params=params, headers=headers, auth=self.connection.auth
            )
        except httpx.TransportError as exc:
            # Certificates, host names and handshakes do not mend by waiting: one attempt, one clear error.
            permanent = _permanent(exc, self.connection, endpoint)
            if permanent is not None:
                raise permanent from None
            raise transient_error(exc, endpoint, self.connection.base_url) from exc
        log.debug("%s -> %s in %.1f ms", endpoint, resp.status_code, (time.perf_counter() - started) * 1e3)
        return resp

    def _send(self, method: str, path: str, content: bytes | None, params: dict[str, Any] | None) -> dict[str, Any]:
        endpoint = f"{method} {path}"
        headers = {"Content-Type": "application/json"} if content is not None else None
        resp = self._exchange(endpoint, method=method, path=path, content=content, params=params, headers=headers)
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
        raise self._error(resp, endpoint, _subject(content, params) if resp.status_code == 403 else "")

    def _error(self, resp: httpx.Response, endpoint: str, subject: str = "") -> ApiError:
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        try:
            envelope = resp.json()
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and "error_code" in envelope:
            return map_error(
                status=resp.status_code,
                error_code=str(envelope.get("error_code")),
                message=str(envelope.get("message", ""))[:2000] + subject,
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
            message=(text or resp.reason_phrase) + subject,
            endpoint=endpoint,
            retry_after=retry_after,
        )


class TransportPool:
    """One connection pool (``httpx.Client``) per server, shared by threads; built on first use.

    Credentials stay on the ``Connection`` and go with each request, so two ways of naming the same
    server share one pool; different TLS settings (CA bundle, client certificate) get their own.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, tuple[str | None, str | None] | None], httpx.Client] = {}
        self._policy = policy
        self._clock = clock
        self._http_transport = http_transport
        self._storage: httpx.Client | None = None

    def get(self, connection: Connection) -> Transport:
        tls = connection.tls
        key = (connection.base_url, tls.key if tls is not None else None)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = httpx.Client(
                    base_url=connection.base_url,
                    transport=self._http_transport,
                    verify=tls.context if tls is not None else True,
                    timeout=DEFAULT_TIMEOUT,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
                    follow_redirects=False,
                )
                self._clients[key] = client
        return Transport(connection, client, policy=self._policy, clock=self._clock, storage=self.storage_client)

    def storage_client(self) -> httpx.Client:
        """One client for signed cloud-storage URLs, built on first use: no auth (a signed URL carries its
        own; the workspace token must never reach the storage), no redirects, and the default trust store
        (cloud storage has publicly trusted certificates, whatever CA the tracking server uses)."""
        with self._lock:
            if self._storage is None:
                self._storage = httpx.Client(
                    transport=self._http_transport,
                    timeout=DEFAULT_TIMEOUT,
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
                    follow_redirects=False,
                )
            return self._storage

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            if self._storage is not None:
                self._storage.close()
                self._storage = None

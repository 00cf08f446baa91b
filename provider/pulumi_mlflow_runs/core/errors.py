"""The exception tree, drawn once.

Every failure a caller can meet is a ``MlflowRunsError``::

    MlflowRunsError
    ├── ConfigurationError          no way to reach a server, or an invalid connection setting
    │   └── ConnectionSetupError    the server cannot be reached as configured (TLS, host name); never retried
    ├── InputError                  a resource input breaks a documented limit (names property and limit)
    ├── TransportError              the request may not have reached the server, or its answer was lost
    │   └── RequestTimeout
    └── ApiError                    the server answered with an error status (status, error_code, endpoint)
        ├── BadRequest (400)
        │   └── InvalidParameterValue, MalformedRequest
        ├── Unauthenticated (401)
        ├── PermissionDenied (403)
        ├── NotFound (404)
        │   └── ResourceDoesNotExist, EndpointNotFound
        ├── Conflict (409)
        │   └── ResourceAlreadyExists
        ├── TooManyRequests (429)
        │   └── RequestLimitExceeded
        ├── InternalError (500)
        ├── BadGateway (502), ServiceUnavailable (503), GatewayTimeout (504)

``map_error`` picks the class by ``error_code`` first, then by status, so ``except NotFound`` works
whether or not the server filled in an ``error_code``.
"""

from __future__ import annotations

from typing import Any


class MlflowRunsError(Exception):
    """Base of every error raised by this package."""

    left_behind: dict[str, Any] | None = None
    """Set by a create or update that failed part-way: the state of the run as it is (``run_id`` included),
    for a front door that can hand it to the engine (the plugin's partial failure). Its ``run`` is None:
    the next update reads the run from the server instead of trusting it."""


class ConfigurationError(MlflowRunsError):
    """No usable connection settings; the message lists the ways to give them."""


class ConnectionSetupError(ConfigurationError):
    """A failure no retry can mend, met when connecting: a server certificate that does not verify, an
    unknown host name, a refused TLS handshake, a client certificate the server rejects.

    The server never acted on the request. Raised on the first attempt; the message says what to fix.
    """

    def __init__(self, message: str, *, endpoint: str, kind: str) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        #: ``certificate``, ``hostname``, ``handshake`` or ``client-certificate``
        self.kind = kind
        self._message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_setup, (self._message, self.endpoint, self.kind))


def _rebuild_setup(message: str, endpoint: str, kind: str) -> ConnectionSetupError:
    return ConnectionSetupError(message, endpoint=endpoint, kind=kind)


class InputError(MlflowRunsError):
    """A resource input breaks a limit; ``prop`` names the property (dotted path)."""

    def __init__(self, prop: str, reason: str) -> None:
        super().__init__(f"{prop}: {reason}")
        self.prop = prop
        self.reason = reason


class TransportError(MlflowRunsError):
    """The exchange failed below HTTP: the server may or may not have acted on the request."""

    def __init__(self, message: str, *, endpoint: str, sent: bool) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        #: False only when the request certainly never left (connect failure): safe to send again.
        self.sent = sent


class RequestTimeout(TransportError):
    """No answer in time; the server may have applied the request."""


class ApiError(MlflowRunsError):
    """The server answered with an error status."""

    status: int
    error_code: str
    message: str
    endpoint: str
    retry_after: float | None

    def __init__(
        self,
        *,
        status: int,
        error_code: str,
        message: str,
        endpoint: str,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error_code = error_code
        self.message = message
        self.endpoint = endpoint
        self.retry_after = retry_after
        super().__init__(f"{endpoint} failed with HTTP {status} {error_code}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ needs help to survive pickling (the host may pickle tracebacks).
        fields = ("status", "error_code", "message", "endpoint", "retry_after")
        return (_rebuild, (type(self), {f: getattr(self, f) for f in fields}))


def _rebuild(cls: type[ApiError], kwargs: dict[str, Any]) -> ApiError:
    return cls(**kwargs)


class BadRequest(ApiError):
    """HTTP 400."""


class InvalidParameterValue(BadRequest):
    """MLflow ``INVALID_PARAMETER_VALUE``: for example an attempt to change a written param."""


class MalformedRequest(BadRequest):
    """MLflow ``MALFORMED_REQUEST``."""


class Unauthenticated(ApiError):
    """HTTP 401: the token is missing, wrong or expired."""


class PermissionDenied(ApiError):
    """HTTP 403."""


class NotFound(ApiError):
    """HTTP 404."""


class ResourceDoesNotExist(NotFound):
    """MLflow ``RESOURCE_DOES_NOT_EXIST``."""


class EndpointNotFound(NotFound):
    """HTTP 404 without an MLflow envelope: the server does not offer this endpoint."""


class Conflict(ApiError):
    """HTTP 409."""


class ResourceAlreadyExists(Conflict):
    """MLflow ``RESOURCE_ALREADY_EXISTS``."""


class TooManyRequests(ApiError):
    """HTTP 429; ``retry_after`` holds the server's hint in seconds."""


class RequestLimitExceeded(TooManyRequests):
    """MLflow/Databricks ``REQUEST_LIMIT_EXCEEDED``."""


class InternalError(ApiError):
    """HTTP 500."""


class BadGateway(ApiError):
    """HTTP 502."""


class ServiceUnavailable(ApiError):
    """HTTP 503."""


class GatewayTimeout(ApiError):
    """HTTP 504."""


_BY_ERROR_CODE: dict[str, type[ApiError]] = {
    "INVALID_PARAMETER_VALUE": InvalidParameterValue,
    "MALFORMED_REQUEST": MalformedRequest,
    "BAD_REQUEST": BadRequest,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "RESOURCE_DOES_NOT_EXIST": ResourceDoesNotExist,
    "NOT_FOUND": NotFound,
    "ENDPOINT_NOT_FOUND": EndpointNotFound,
    "RESOURCE_ALREADY_EXISTS": ResourceAlreadyExists,
    "RESOURCE_CONFLICT": Conflict,
    "REQUEST_LIMIT_EXCEEDED": RequestLimitExceeded,
    "TOO_MANY_REQUESTS": TooManyRequests,
    "INTERNAL_ERROR": InternalError,
    "TEMPORARILY_UNAVAILABLE": ServiceUnavailable,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
    500: InternalError,
    502: BadGateway,
    503: ServiceUnavailable,
    504: GatewayTimeout,
}


def map_error(
    *, status: int, error_code: str, message: str, endpoint: str, retry_after: float | None = None
) -> ApiError:
    """Build the most specific error: by ``error_code`` first, then by HTTP status."""
    cls = _BY_ERROR_CODE.get(error_code) or _BY_STATUS.get(status) or ApiError
    return cls(status=status, error_code=error_code, message=message, endpoint=endpoint, retry_after=retry_after)

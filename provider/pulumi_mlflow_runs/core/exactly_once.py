"""Non-idempotent writes that take effect once, even when the answer to one is lost.

``runs/create``, metric points in ``log-batch`` and ``runs/outputs`` must not be repeated blindly: a
timeout or a dropped connection after the server acted would create a second run or a second point.
So after an uncertain outcome we ask the server what it already has, and send only the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pulumi_mlflow_runs.core.errors import ApiError, TooManyRequests, TransportError
from pulumi_mlflow_runs.core.retries import retry_call
from pulumi_mlflow_runs.core.transport import Transport

T = TypeVar("T")

_MAYBE_APPLIED_STATUS = (500, 502, 503, 504)


def outcome_unknown(exc: BaseException) -> bool:
    """The server may or may not have applied the request."""
    if isinstance(exc, TransportError):
        return exc.sent
    return isinstance(exc, ApiError) and exc.status in _MAYBE_APPLIED_STATUS


def _retryable(exc: Exception) -> tuple[bool, float | None]:
    if isinstance(exc, TooManyRequests):
        return True, exc.retry_after
    if isinstance(exc, TransportError):
        return True, None
    if outcome_unknown(exc):
        return True, getattr(exc, "retry_after", None)
    return False, None


def send_exactly_once(
    transport: Transport,
    request: T,
    send: Callable[[T], None],
    remaining: Callable[[T], T | None],
) -> None:
    """Send ``request``; after an uncertain outcome, send only ``remaining(request)`` (None: all done)."""
    uncertain = False

    def attempt() -> None:
        nonlocal uncertain
        pending: T | None = remaining(request) if uncertain else request
        if pending is None:
            return
        try:
            send(pending)
        except Exception as exc:
            uncertain = uncertain or outcome_unknown(exc)
            raise

    retry_call(attempt, should_retry=_retryable, policy=transport.policy, clock=transport.clock)

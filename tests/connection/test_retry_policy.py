"""The retry policy as a decision table: how many attempts each answer gets, through the real Transport.

Every request goes through ``Transport.call``; the server here is an ``httpx.MockTransport`` that always
gives the same answer, and the clock is fake, so a whole retry schedule runs in microseconds. With a 10 s
deadline and a backoff of 1, 2, 4 s (no jitter), a retried answer gets 4 attempts; with Retry-After: 1 it
gets 11 (a wait of 1 s before each, until the deadline); an answer that retrying cannot mend gets 1.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pulumi_mlflow_runs import Connection, MlflowRunsError, RetryPolicy
from pulumi_mlflow_runs.core.transport import Transport

from support.fake_clock import FakeClock

POLICY = RetryPolicy(deadline=10, initial_backoff=1, multiplier=2, jitter=0)
BACKOFF_ATTEMPTS = 4  # waits of 1, 2 and 4 s; an 8 s wait would pass the 10 s deadline
RETRY_AFTER_ATTEMPTS = 11  # a 1 s wait before each attempt after the first, up to the deadline


def _api_error(status: int, code: str, **headers: str) -> httpx.Response:
    body = json.dumps({"error_code": code, "message": "no"}).encode()
    return httpx.Response(status, content=body, headers={"Content-Type": "application/json", **headers})


ANSWERS: dict[str, Any] = {
    "400 INVALID_PARAMETER_VALUE": _api_error(400, "INVALID_PARAMETER_VALUE"),
    "400 BAD_REQUEST": _api_error(400, "BAD_REQUEST"),
    "401 UNAUTHENTICATED": _api_error(401, "UNAUTHENTICATED"),
    "403 PERMISSION_DENIED": _api_error(403, "PERMISSION_DENIED"),
    "404 RESOURCE_DOES_NOT_EXIST": _api_error(404, "RESOURCE_DOES_NOT_EXIST"),
    "404 page (no such endpoint)": httpx.Response(404, content=b"<html>Not Found</html>"),
    "409 RESOURCE_ALREADY_EXISTS": _api_error(409, "RESOURCE_ALREADY_EXISTS"),
    "429 without Retry-After": _api_error(429, "REQUEST_LIMIT_EXCEEDED"),
    "429 Retry-After: 1": _api_error(429, "REQUEST_LIMIT_EXCEEDED", **{"Retry-After": "1"}),
    "500 INTERNAL_ERROR": _api_error(500, "INTERNAL_ERROR"),
    "502 page": httpx.Response(502, content=b"bad gateway"),
    "503 TEMPORARILY_UNAVAILABLE": _api_error(503, "TEMPORARILY_UNAVAILABLE"),
    "504 page": httpx.Response(504, content=b"gateway timeout"),
    "connection refused": httpx.ConnectError("refused"),
    "connection reset after sending": httpx.ReadError("reset"),
    "read timeout": httpx.ReadTimeout("slow"),
}

# answer: (attempts for an idempotent call, attempts for one that is not)
TABLE: dict[str, tuple[int, int]] = {
    "400 INVALID_PARAMETER_VALUE": (1, 1),
    "400 BAD_REQUEST": (1, 1),
    "401 UNAUTHENTICATED": (1, 1),
    "403 PERMISSION_DENIED": (1, 1),
    "404 RESOURCE_DOES_NOT_EXIST": (1, 1),
    "404 page (no such endpoint)": (1, 1),
    "409 RESOURCE_ALREADY_EXISTS": (1, 1),
    # A non-idempotent call is never resent by the transport: `_exactly_once` first asks the server what
    # it already has. (A 429 is refused before anything is done, and `_exactly_once` resends it whole.)
    "429 without Retry-After": (BACKOFF_ATTEMPTS, 1),
    "429 Retry-After: 1": (RETRY_AFTER_ATTEMPTS, 1),
    "500 INTERNAL_ERROR": (BACKOFF_ATTEMPTS, 1),
    "502 page": (BACKOFF_ATTEMPTS, 1),
    "503 TEMPORARILY_UNAVAILABLE": (BACKOFF_ATTEMPTS, 1),
    "504 page": (BACKOFF_ATTEMPTS, 1),
    "connection refused": (BACKOFF_ATTEMPTS, 1),
    "connection reset after sending": (BACKOFF_ATTEMPTS, 1),
    "read timeout": (BACKOFF_ATTEMPTS, 1),
}


def _attempts(answer: Any, *, idempotent: bool) -> tuple[int, FakeClock, MlflowRunsError]:
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, content=answer.content, headers=answer.headers)

    clock = FakeClock()
    connection = Connection("http://127.0.0.1:5000", "test", False)
    with httpx.Client(base_url=connection.base_url, transport=httpx.MockTransport(handler)) as client:
        transport = Transport(connection, client, policy=POLICY, clock=clock)
        with pytest.raises(MlflowRunsError) as failed:
            transport.call("POST", "/api/2.0/mlflow/runs/update", body={"run_id": "r"}, idempotent=idempotent)
    return len(sent), clock, failed.value


def test_every_answer_has_a_row() -> None:
    assert set(TABLE) == set(ANSWERS)


@pytest.mark.parametrize("answer", list(TABLE))
@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "not-idempotent"])
def test_attempts_per_answer(answer: str, idempotent: bool) -> None:
    expected = TABLE[answer][0 if idempotent else 1]
    attempts, clock, error = _attempts(ANSWERS[answer], idempotent=idempotent)
    assert attempts == expected, f"{answer}: {attempts} attempt(s)"
    assert clock.now <= POLICY.deadline, "no attempt starts after the deadline"
    if expected > 1:
        assert any(f"gave up after {expected} attempt(s)" in note for note in getattr(error, "__notes__", []))
    else:
        assert clock.sleeps == [], "an answer that is not retried is not waited for either"


def test_retry_after_is_what_is_waited() -> None:
    _, clock, _ = _attempts(ANSWERS["429 Retry-After: 1"], idempotent=True)
    assert clock.sleeps == [1.0] * (RETRY_AFTER_ATTEMPTS - 1)


def test_backoff_doubles_without_retry_after() -> None:
    _, clock, _ = _attempts(ANSWERS["503 TEMPORARILY_UNAVAILABLE"], idempotent=True)
    assert clock.sleeps == [1.0, 2.0, 4.0]

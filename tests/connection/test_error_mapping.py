"""Error mapping, table-driven: error_code first, then HTTP status."""

from __future__ import annotations

import pickle

import pytest

import pulumi_mlflow_runs as p
from pulumi_mlflow_runs.core.errors import map_error


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        (400, "INVALID_PARAMETER_VALUE", p.InvalidParameterValue),
        (400, "MALFORMED_REQUEST", p.MalformedRequest),
        (400, "SOMETHING_NEW", p.BadRequest),
        (401, "UNAUTHENTICATED", p.Unauthenticated),
        (403, "PERMISSION_DENIED", p.PermissionDenied),
        (404, "RESOURCE_DOES_NOT_EXIST", p.ResourceDoesNotExist),
        (404, "HTTP_404", p.NotFound),
        (409, "RESOURCE_ALREADY_EXISTS", p.ResourceAlreadyExists),
        (400, "RESOURCE_ALREADY_EXISTS", p.ResourceAlreadyExists),
        (429, "REQUEST_LIMIT_EXCEEDED", p.RequestLimitExceeded),
        (429, "HTTP_429", p.TooManyRequests),
        (500, "INTERNAL_ERROR", p.InternalError),
        (502, "HTTP_502", p.BadGateway),
        (503, "TEMPORARILY_UNAVAILABLE", p.ServiceUnavailable),
        (504, "HTTP_504", p.GatewayTimeout),
        (418, "TEAPOT", p.ApiError),
    ],
)
def test_mapping(status: int, error_code: str, expected: type[p.ApiError]) -> None:
    err = map_error(status=status, error_code=error_code, message="m", endpoint="POST /api/x")
    assert type(err) is expected
    assert isinstance(err, p.MlflowRunsError)
    assert str(err) == f"POST /api/x failed with HTTP {status} {error_code}: m"


def test_not_found_family_is_catchable_by_status_class() -> None:
    err = map_error(status=404, error_code="RESOURCE_DOES_NOT_EXIST", message="gone", endpoint="GET /x")
    with pytest.raises(p.NotFound):
        raise err


def test_api_errors_survive_pickling() -> None:
    err = map_error(status=429, error_code="REQUEST_LIMIT_EXCEEDED", message="m", endpoint="POST /x",
                    retry_after=3.0)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is p.RequestLimitExceeded
    assert (back.status, back.error_code, back.retry_after, str(back)) == (429, "REQUEST_LIMIT_EXCEEDED", 3.0, str(err))

"""Declare MLflow experiment runs as Pulumi resources, on Databricks or an open-source tracking server.

Names are imported on first use: the provider host unpickles a provider for every preview, and Check and
Diff should not pay for the HTTP client and the pydantic models they never use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._auth import Connection, StackConfig, resolve_connection
    from ._client import ENDPOINTS, MlflowApi
    from ._errors import (
        ApiError,
        BadGateway,
        BadRequest,
        ConfigurationError,
        Conflict,
        ConnectionSetupError,
        EndpointNotFound,
        GatewayTimeout,
        InputError,
        InternalError,
        InvalidParameterValue,
        MalformedRequest,
        MlflowRunsError,
        NotFound,
        PermissionDenied,
        RequestLimitExceeded,
        RequestTimeout,
        ResourceAlreadyExists,
        ResourceDoesNotExist,
        ServiceUnavailable,
        TooManyRequests,
        TransportError,
        Unauthenticated,
    )
    from ._retries import Clock, RetryPolicy, SystemClock, retry_call
    from ._transport import Transport, TransportPool
    from .experiment import Experiment, ExperimentProvider
    from .experiment_run import ExperimentRun, ExperimentRunProvider
    from .functions import RunResult, get_run, get_run_output, search_runs, search_runs_output

_WHERE = {
    "ApiError": "._errors",
    "BadGateway": "._errors",
    "BadRequest": "._errors",
    "Clock": "._retries",
    "ConfigurationError": "._errors",
    "Conflict": "._errors",
    "Connection": "._auth",
    "ConnectionSetupError": "._errors",
    "ENDPOINTS": "._client",
    "EndpointNotFound": "._errors",
    "Experiment": ".experiment",
    "ExperimentProvider": ".experiment",
    "ExperimentRun": ".experiment_run",
    "ExperimentRunProvider": ".experiment_run",
    "GatewayTimeout": "._errors",
    "InputError": "._errors",
    "InternalError": "._errors",
    "InvalidParameterValue": "._errors",
    "MalformedRequest": "._errors",
    "MlflowApi": "._client",
    "MlflowRunsError": "._errors",
    "NotFound": "._errors",
    "PermissionDenied": "._errors",
    "RequestLimitExceeded": "._errors",
    "RequestTimeout": "._errors",
    "ResourceAlreadyExists": "._errors",
    "ResourceDoesNotExist": "._errors",
    "RetryPolicy": "._retries",
    "RunResult": ".functions",
    "ServiceUnavailable": "._errors",
    "StackConfig": "._auth",
    "SystemClock": "._retries",
    "TooManyRequests": "._errors",
    "Transport": "._transport",
    "TransportError": "._errors",
    "TransportPool": "._transport",
    "Unauthenticated": "._errors",
    "get_run": ".functions",
    "get_run_output": ".functions",
    "resolve_connection": "._auth",
    "retry_call": "._retries",
    "search_runs": ".functions",
    "search_runs_output": ".functions",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ENDPOINTS",
    "ApiError",
    "BadGateway",
    "BadRequest",
    "Clock",
    "ConfigurationError",
    "Conflict",
    "Connection",
    "ConnectionSetupError",
    "EndpointNotFound",
    "Experiment",
    "ExperimentProvider",
    "ExperimentRun",
    "ExperimentRunProvider",
    "GatewayTimeout",
    "InputError",
    "InternalError",
    "InvalidParameterValue",
    "MalformedRequest",
    "MlflowApi",
    "MlflowRunsError",
    "NotFound",
    "PermissionDenied",
    "RequestLimitExceeded",
    "RequestTimeout",
    "ResourceAlreadyExists",
    "ResourceDoesNotExist",
    "RetryPolicy",
    "RunResult",
    "ServiceUnavailable",
    "StackConfig",
    "SystemClock",
    "TooManyRequests",
    "Transport",
    "TransportError",
    "TransportPool",
    "Unauthenticated",
    "get_run",
    "get_run_output",
    "resolve_connection",
    "retry_call",
    "search_runs",
    "search_runs_output",
]

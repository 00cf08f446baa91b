"""Declare MLflow experiment runs as Pulumi resources, on Databricks or an open-source tracking server.

The package in layers: ``core`` (the rules, the MLflow client, the artifact stores; it imports no front
door), and two front doors over it, apart from each other: ``dynamic`` (the dynamic provider: the
``ExperimentRun`` and ``Experiment`` resources of Python programs, with nothing to install, and the program
functions) and ``native`` (the plugin ``pulumi-resource-mlflow-runs``, with a schema, for programs in every
Pulumi language; its Python classes are ``pulumi_mlflow_runs.native.ExperimentRun`` and ``Experiment``).
``cli`` is the command-line tool. ``experiment_run``, ``experiment`` and ``functions`` at the top are the
module paths that providers pickled into existing stacks name; they stay importable.

Names are imported on first use: the provider host unpickles a provider for every preview, and Check and
Diff should not pay for the HTTP client and the pydantic models they never use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.auth import Connection, StackConfig, resolve_connection
    from pulumi_mlflow_runs.core.client import ENDPOINTS, MlflowApi
    from pulumi_mlflow_runs.core.errors import (
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
    from pulumi_mlflow_runs.core.retries import Clock, RetryPolicy, SystemClock, retry_call
    from pulumi_mlflow_runs.core.transport import Transport, TransportPool
    from pulumi_mlflow_runs.dynamic.experiment import Experiment, ExperimentProvider
    from pulumi_mlflow_runs.dynamic.experiment_run import ExperimentRun, ExperimentRunProvider
    from pulumi_mlflow_runs.dynamic.functions import RunResult, get_run, get_run_output, search_runs, search_runs_output
    from pulumi_mlflow_runs.dynamic.run_table import RunTable
    from pulumi_mlflow_runs.dynamic.table_provider import RunTableProvider

_WHERE = {
    "ApiError": ".core.errors",
    "BadGateway": ".core.errors",
    "BadRequest": ".core.errors",
    "Clock": ".core.retries",
    "ConfigurationError": ".core.errors",
    "Conflict": ".core.errors",
    "Connection": ".core.auth",
    "ConnectionSetupError": ".core.errors",
    "ENDPOINTS": ".core.client",
    "EndpointNotFound": ".core.errors",
    "Experiment": ".dynamic.experiment",
    "ExperimentProvider": ".dynamic.experiment",
    "ExperimentRun": ".dynamic.experiment_run",
    "ExperimentRunProvider": ".dynamic.experiment_run",
    "GatewayTimeout": ".core.errors",
    "InputError": ".core.errors",
    "InternalError": ".core.errors",
    "InvalidParameterValue": ".core.errors",
    "MalformedRequest": ".core.errors",
    "MlflowApi": ".core.client",
    "MlflowRunsError": ".core.errors",
    "NotFound": ".core.errors",
    "PermissionDenied": ".core.errors",
    "RequestLimitExceeded": ".core.errors",
    "RequestTimeout": ".core.errors",
    "ResourceAlreadyExists": ".core.errors",
    "ResourceDoesNotExist": ".core.errors",
    "RetryPolicy": ".core.retries",
    "RunResult": ".dynamic.functions",
    "RunTable": ".dynamic.run_table",
    "RunTableProvider": ".dynamic.table_provider",
    "ServiceUnavailable": ".core.errors",
    "StackConfig": ".core.auth",
    "SystemClock": ".core.retries",
    "TooManyRequests": ".core.errors",
    "Transport": ".core.transport",
    "TransportError": ".core.errors",
    "TransportPool": ".core.transport",
    "Unauthenticated": ".core.errors",
    "get_run": ".dynamic.functions",
    "get_run_output": ".dynamic.functions",
    "resolve_connection": ".core.auth",
    "retry_call": ".core.retries",
    "search_runs": ".dynamic.functions",
    "search_runs_output": ".dynamic.functions",
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
    "RunTable",
    "RunTableProvider",
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

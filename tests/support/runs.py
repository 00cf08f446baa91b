"""Small helpers the tests share: unique names, what was sent, what the server holds, a run made through the host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.retries import RetryPolicy

    from .host import DynamicHost
    from .mlflow_proxy import Request


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def endpoints(requests: list[Request]) -> list[str]:
    return [r.endpoint for r in requests]


def all_runs(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    """Every run of the experiment, deleted ones included, by run id."""
    from mlflow.entities import ViewType

    return {r.info.run_id: r for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}


def run_props(**inputs: Any) -> dict[str, Any]:
    """An ExperimentRun's properties as the program sends them: the inputs and the pickled provider."""
    from pulumi_mlflow_runs import ExperimentRunProvider

    from .host import with_provider

    return with_provider(inputs, ExperimentRunProvider())


def create_run(host: DynamicHost, **inputs: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Check then Create through the provider host: ``(run id, outputs, checked inputs)``."""
    checked = host.check({}, run_props(**inputs))
    assert checked.failures == []
    run_id, outs = host.create(checked.inputs)
    return run_id, outs, checked.inputs


@contextmanager
def core_api(url: str, policy: RetryPolicy | None = None) -> Iterator[MlflowApi]:
    """The core's client of the server at ``url``, on a connection pool of its own that is closed after;
    ``policy``: its retries (a short deadline, where a test faults a request for good)."""
    from pulumi_mlflow_runs.core.auth import Connection
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.transport import TransportPool

    pool = TransportPool() if policy is None else TransportPool(policy=policy)
    try:
        yield MlflowApi(pool.get(Connection(url, "test", False)))
    finally:
        pool.close()

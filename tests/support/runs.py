"""Small helpers the whole-program tests share: unique names, what was sent, what the server holds."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

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

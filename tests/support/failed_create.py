"""A create whose artifact upload fails, as the object-store tests provoke it (a missing bucket, an endpoint
nothing answers, refused credentials): the provider's message, and proof that the half-made run was rolled back."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from mlflow.entities import ViewType

from support.host import DynamicHost, HostError
from support.runs import create_run


def failed_create(host: DynamicHost, client: Any, experiment: str) -> str:
    """Create a run declaring one file in ``experiment``: the error text; no run is left active there."""
    with pytest.raises(HostError) as failed:
        create_run(host, experiment_id=experiment, artifacts={"a.txt": pulumi.StringAsset("x")})
    assert client.search_runs([experiment], run_view_type=ViewType.ACTIVE_ONLY) == [], "the run was rolled back"
    return str(failed.value.details)

"""Databricks-only behaviour, which an open-source server cannot show: bulk endpoints, a workspace URL built
from ``deployment_name``, bearer auth from stack config. A small stateful fake behind ``httpx.MockTransport``.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pulumi_mlflow_runs import EndpointNotFound, ExperimentRunProvider, MlflowApi, StackConfig, TransportPool
from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.auth import BearerAuth, Connection, SecretStr
from pulumi_mlflow_runs.core.runtime import Runtime

from support.fake_workspace import FAKE_TOKEN, FAKE_WORKSPACE, FakeWorkspace

TOKEN = FAKE_TOKEN
WORKSPACE = FAKE_WORKSPACE


@pytest.fixture
def workspace() -> FakeWorkspace:
    return FakeWorkspace()


def _api(workspace: FakeWorkspace, token: str = TOKEN) -> MlflowApi:
    pool = TransportPool(http_transport=httpx.MockTransport(workspace))
    return MlflowApi(pool.get(Connection(WORKSPACE, "test", True, BearerAuth(SecretStr(token)))))


def test_resource_on_a_workspace_named_by_deployment_name(workspace: FakeWorkspace) -> None:
    provider = ExperimentRunProvider()
    provider._runtime = Runtime(StackConfig(token=SecretStr(TOKEN)), http_transport=httpx.MockTransport(workspace))
    checked = provider.check({}, {"experiment_id": "42", "deployment_name": "dbc-1234", "status": "FINISHED",
                                  "params": {"p": "1"}, "metrics": [{"key": "m", "value": 1.0}]})
    assert checked.failures == []
    created = provider.create(checked.inputs)
    assert {str(r.url.host) for r in workspace.requests} == {"dbc-1234.cloud.databricks.com"}
    paths = [r.url.path.rsplit("/", 1)[-1] for r in workspace.requests]
    assert paths == ["create", "update", "log-batch", "get"]  # the minimal sequence
    assert workspace.runs[created.id]["info"]["status"] == "FINISHED"
    provider.delete(created.id, created.outs or {})
    assert workspace.runs[created.id]["info"]["lifecycle_stage"] == "deleted"


def test_a_wrong_token_is_a_clear_error_without_the_token(workspace: FakeWorkspace) -> None:
    wrong = "dapi" + "f" * 32
    with pytest.raises(Exception) as info:
        _api(workspace, wrong).get_run("x")
    assert "HTTP 401 UNAUTHENTICATED" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value)


def test_bulk_delete_and_restore(workspace: FakeWorkspace) -> None:
    api = _api(workspace)
    for start in (10, 20, 30):
        api.create_run(m.CreateRun(experiment_id="7", start_time=start))
    assert api.delete_runs_bulk(m.DeleteRuns(experiment_id="7", max_timestamp_millis=20, max_runs=1)) == 1
    assert api.delete_runs_bulk(m.DeleteRuns(experiment_id="7", max_timestamp_millis=20)) == 1
    assert sum(r["info"]["lifecycle_stage"] == "deleted" for r in workspace.runs.values()) == 2
    assert api.restore_runs_bulk(m.RestoreRuns(experiment_id="7", min_timestamp_millis=0)) == 2
    sent = [json.loads(r.content) for r in workspace.requests if r.url.path.endswith("delete-runs")]
    assert sent[0] == {"experiment_id": "7", "max_timestamp_millis": 20, "max_runs": 1}


def test_bulk_endpoints_are_missing_on_open_source_servers(mlflow_server) -> None:
    pool = TransportPool()
    try:
        api = MlflowApi(pool.get(Connection(mlflow_server.url, "test", False, None)))
        with pytest.raises(EndpointNotFound) as info:
            api.delete_runs_bulk(m.DeleteRuns(experiment_id="0", max_timestamp_millis=1))
    finally:
        pool.close()
    assert "does not offer this endpoint" in str(info.value)

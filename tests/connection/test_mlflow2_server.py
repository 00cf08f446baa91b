"""An MLflow 2.x server (the last 2.x release, in its own venv from scripts/mlflow2-venv.sh), through the real host.

What 2.x lacks and how it shows: runs/outputs is a 404, model inputs alone are a 400 ("Missing value for
required parameter 'datasets'") and beside datasets are dropped without a word, and so are a metric
point's model_id, dataset_name and dataset_digest. Each is refused before anything is sent, with the
MLflow version needed and the server's (``GET /version``), and a create's half-made run is deleted.

The server: the session's own when ``MLFLOW_SERVER_PYTHON`` runs a 2.x MLflow, otherwise one started here
from ``.venv-mlflow2``. Without either the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.entities import ViewType

from pulumi_mlflow_runs import ExperimentRunProvider
from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.errors import EndpointNotFound, InputError
from pulumi_mlflow_runs.core.run_apply import apply_writes
from pulumi_mlflow_runs.core.run_plan import Writes
from pulumi_mlflow_runs.core.transport import TransportPool

from support.ci import unavailable
from support.host import DynamicHost, HostError, isolated_env, with_provider
from support.mlflow_server import MlflowServer, start_mlflow_server
from support.server_version import mlflow_version_of, server_python

# An MLflow 2.x server of its own, or the session's when that is 2.x (.ci/run runs this file only there).
pytestmark = [pytest.mark.slow, pytest.mark.mlflow2]

MLFLOW2_VENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-mlflow2" / "bin" / "python"


def _is_2x(python: str) -> bool:
    return mlflow_version_of(python).startswith("2.")


def _mlflow2_python() -> str:
    """The python whose MLflow the 2.x server runs: the session's when it is 2.x, else .venv-mlflow2's."""
    python = server_python()
    return python if python is not None and _is_2x(python) else str(MLFLOW2_VENV_PYTHON)


@pytest.fixture(scope="module")
def mlflow2(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    session_python = server_python()
    if session_python is not None and _is_2x(session_python):
        yield request.getfixturevalue("mlflow_server")
        return
    if not MLFLOW2_VENV_PYTHON.exists() or not _is_2x(str(MLFLOW2_VENV_PYTHON)):
        message = f"no MLflow 2.x venv at {MLFLOW2_VENV_PYTHON.parent.parent}: run scripts/mlflow2-venv.sh"
        unavailable(message, "the MLflow 2.x tests")
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow2-server"), python=str(MLFLOW2_VENV_PYTHON))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def host2(mlflow2: MlflowServer) -> Iterator[DynamicHost]:
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=mlflow2.url)) as h:
        h.configure({})
        yield h


@pytest.fixture(scope="module")
def client2(mlflow2: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=mlflow2.url)


@pytest.fixture
def experiment2(client2: Any) -> str:
    return str(client2.create_experiment(f"mlflow2-{uuid.uuid4().hex}"))


def _checked(host: DynamicHost, inputs: dict[str, Any]) -> dict[str, Any]:
    result = host.check({}, with_provider(inputs, ExperimentRunProvider()))
    assert result.failures == []
    return result.inputs


def _runs_named(client: Any, experiment_id: str, name: str) -> list[Any]:
    return list(client.search_runs([experiment_id], f"attributes.run_name = '{name}'", run_view_type=ViewType.ALL))


def test_the_server_is_2x_and_says_its_version(mlflow2: MlflowServer) -> None:
    answer = httpx.get(f"{mlflow2.url}/version", timeout=10)
    assert answer.status_code == 200 and answer.text.strip().startswith("2.22."), answer.text


DATASET = {"dataset": {"name": "d", "digest": "1", "source_type": "local", "source": "s"}, "tags": {}}
MLFLOW3_ONLY = [
    pytest.param({"model_outputs": [{"model_id": "m-out", "step": 1}]}, "model_outputs", id="model_outputs"),
    pytest.param({"model_inputs": [{"model_id": "m-in"}]}, "model_inputs", id="model_inputs"),
    pytest.param(
        {"model_inputs": [{"model_id": "m-in"}], "dataset_inputs": [DATASET]}, "model_inputs", id="beside-datasets"
    ),
    pytest.param({"metrics": [{"key": "acc", "value": 0.9, "model_id": "m-1"}]}, "metrics", id="metric-model_id"),
    pytest.param(
        {"metrics": [{"key": "acc", "value": 0.9, "dataset_name": "d", "dataset_digest": "1"}]},
        "metrics",
        id="metric-dataset",
    ),
]


@pytest.mark.parametrize(("extra", "prop"), MLFLOW3_ONLY)
def test_an_mlflow3_input_is_refused_with_both_versions_and_the_run_is_rolled_back(
    host2: DynamicHost, client2: Any, experiment2: str, mlflow2: MlflowServer, extra: dict[str, Any], prop: str
) -> None:
    name = f"v3-{uuid.uuid4().hex[:8]}"
    inputs = _checked(host2, {"experiment_id": experiment2, "run_name": name, "params": {"p": "1"}, **extra})
    with pytest.raises(HostError) as info:
        host2.create(inputs)
    details = info.value.details
    version = mlflow_version_of(_mlflow2_python())
    assert f"{prop}: " in details and "needs an MLflow server of version 3.0 or newer for " in details, details
    assert f"the server at {mlflow2.url} is MLflow {version}" in details, details
    assert "Traceback" not in details and "fix: change `" in details, details
    runs = _runs_named(client2, experiment2, name)
    assert [r.info.lifecycle_stage for r in runs] == ["deleted"], "the half-made run is deleted"
    assert f"the half-created run {runs[0].info.run_id} was deleted" in details


def test_an_update_that_adds_model_outputs_is_refused_before_anything_is_sent(
    host2: DynamicHost, client2: Any, experiment2: str
) -> None:
    base = {"experiment_id": experiment2, "run_name": f"u-{uuid.uuid4().hex[:8]}", "tags": {"a": "1"}}
    run_id, olds = host2.create(_checked(host2, base))
    news = _checked(host2, {**base, "tags": {"a": "2"}, "model_outputs": [{"model_id": "m", "step": 1}]})
    with pytest.raises(HostError) as info:
        host2.update(run_id, olds, news)
    assert "model_outputs: needs an MLflow server of version 3.0 or newer" in info.value.details
    assert "applied: nothing" in info.value.details
    run = client2.get_run(run_id)
    assert run.data.tags["a"] == "1" and run.info.lifecycle_stage == "active"


def test_what_2x_has_lands_whole(host2: DynamicHost, client2: Any, experiment2: str) -> None:
    """Datasets, params, tags and points (with step and timestamp) work on 2.x as on 3.x."""
    inputs = _checked(host2, {
        "experiment_id": experiment2, "run_name": "whole", "status": "FINISHED", "params": {"lr": "0.1"},
        "tags": {"t": "v"}, "dataset_inputs": [DATASET],
        "metrics": [{"key": "loss", "value": 1.0 / (i + 1), "step": i, "timestamp": 1000 + i} for i in range(3)],
    })  # fmt: skip
    run_id, outs = host2.create(inputs)
    run = client2.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"} and run.data.tags["t"] == "v"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["d"]
    assert sorted(p.step for p in client2.get_metric_history(run_id, "loss")) == [0, 1, 2]
    assert outs["run"].get("outputs", {}).get("model_outputs", []) == []


# ---- a server that names no version (before /version, or behind a proxy that hides it) ------------------


def _api(routes: dict[str, httpx.Response]) -> tuple[MlflowApi, list[str]]:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return routes.get(request.url.path, httpx.Response(404, text="<h1>Not Found</h1>"))

    base = f"http://{uuid.uuid4().hex}.invalid"  # the version is remembered per server: a new one each test
    pool = TransportPool(http_transport=httpx.MockTransport(handle))
    return MlflowApi(pool.get(Connection(base_url=base, source="test", databricks=False))), asked


def test_without_a_version_a_missing_outputs_endpoint_says_older_than_3() -> None:
    api, asked = _api({})
    writes = Writes(run_id="r1", outputs=m.LogOutputs(run_id="r1", models=[m.ModelOutput(model_id="m", step=1)]))
    with pytest.raises(InputError) as info:
        apply_writes(api, writes)
    assert info.value.prop == "model_outputs"
    assert "version 3.0 or newer" in str(info.value) and "older than 3.0" in str(info.value)
    assert isinstance(info.value.__cause__, EndpointNotFound)
    assert asked.count("/version") == 1


def test_the_version_is_asked_once_per_server_and_3x_sends() -> None:
    ok = httpx.Response(200, json={})
    api, asked = _api({"/version": httpx.Response(200, text="3.1.0"), "/api/2.0/mlflow/runs/log-inputs": ok})
    writes = Writes(run_id="r1", inputs=m.LogInputs(run_id="r1", models=[m.ModelInput(model_id="m")]))
    apply_writes(api, writes)
    apply_writes(api, writes)
    assert asked == ["/version", "/api/2.0/mlflow/runs/log-inputs", "/api/2.0/mlflow/runs/log-inputs"]


def test_no_mlflow3_input_asks_no_version() -> None:
    api, asked = _api({"/api/2.0/mlflow/runs/log-batch": httpx.Response(200, json={})})
    point = m.Metric(key="k", value=1.0, timestamp=1, step=0)
    apply_writes(api, Writes(run_id="r1", batches=[m.LogBatch(run_id="r1", metrics=[point])]))
    assert asked == ["/api/2.0/mlflow/runs/log-batch"]

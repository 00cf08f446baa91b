"""Bad input, table-driven: every row names the property, the problem and the limit.

The first table runs through ``check`` (the engine's Check); the rest need a server or a host.
"""

from __future__ import annotations

import math
import uuid

import pytest

from pulumi_mlflow_runs import ExperimentRunProvider
from pulumi_mlflow_runs.core.run_spec import check_inputs

from support.host import DynamicHost, HostError, isolated_env, with_provider

OK = {"experiment_id": "1"}
POINT = {"key": "loss", "value": 1.0}

CASES = [
    # (inputs, property, words in the reason)
    ({"experiment_id": 7}, "experiment_id", "must be a string, got a number"),
    ({"experiment_id": ""}, "experiment_id", "must not be empty"),
    ({}, "experiment_id", "is required"),
    ({"run_name": ["x"]}, "run_name", "must be a string, got a list"),
    ({"status": "DONE"}, "status", "must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"),
    ({"status": "finished"}, "status", "must be one of"),
    ({"start_time": -1}, "start_time", "between 0 and 9223372036854775807"),
    ({"start_time": 1.5}, "start_time", "must be a whole number (not a fraction"),
    ({"start_time": math.nan}, "start_time", "must be a whole number (not a fraction"),
    ({"end_time": 2**63}, "end_time", "between 0 and 9223372036854775807"),
    ({"start_time": 10, "end_time": 5}, "end_time", "(5) is before start_time (10)"),
    ({"end_time": "soon"}, "end_time", "must be a whole number, got a string"),
    ({"params": ["a"]}, "params", "must be a map of string to string, got a list"),
    ({"params": {"p": 1}}, "params.p", "must be a string, got a number"),
    ({"params": {"p": "x" * 501}}, "params.p", "501 bytes; the limit is 500 bytes"),
    ({"params": {"p": "é" * 251}}, "params.p", "502 bytes; the limit is 500 bytes"),  # 251 characters
    ({"params": {"k" * 251: "v"}}, "params." + "k" * 251, "251 characters; the limit is 250"),
    ({"params": {"a/../b": "v"}}, "params.a/../b", "must not look like a relative or absolute path"),
    ({"params": {"bad*key": "v"}}, "params.bad*key", "may only contain letters, digits"),
    ({"tags": {"t": "x" * 65537}}, "tags.t", "65537 bytes; the limit is 65536 bytes"),
    ({"tags": {"t": None}}, "tags.t", "must be a string, got null"),
    ({"tags": {"pulumi.creation_token": "x"}}, "tags.pulumi.creation_token", "set by the provider itself"),
    ({"run_name": "r", "tags": {"mlflow.runName": "x"}}, "tags.mlflow.runName", "conflicts with run_name"),
    ({"description": "d", "tags": {"mlflow.note.content": "x"}}, "tags.mlflow.note.content",
     "conflicts with description"),
    ({"metrics": {"loss": 1}}, "metrics", "must be a list, got an object"),
    ({"metrics": [{"key": "loss"}]}, "metrics[0].value", "is required"),
    ({"metrics": [{"key": "loss", "value": "high"}]}, "metrics[0].value", "must be a number (or 'NaN'"),
    ({"metrics": [{"key": "loss", "value": True}]}, "metrics[0].value", "got a boolean"),
    ({"metrics": [{**POINT, "timestamp": -3}]}, "metrics[0].timestamp", "between 0 and"),
    ({"metrics": [{**POINT, "timestamp": math.nan}]}, "metrics[0].timestamp", "must be a whole number (not a fraction"),
    ({"metrics": [{**POINT, "step": 0.5}]}, "metrics[0].step", "must be a whole number (not a fraction"),
    ({"metrics": [{**POINT, "unit": "s"}]}, "metrics[0].unit", "is not a known field"),
    ({"metrics": [POINT, POINT]}, "metrics[1]", "repeats metrics[0] (same key, value, step and timestamp)"),
    ({"dataset_inputs": [{"dataset": {"name": "d"}}]}, "dataset_inputs[0].dataset.digest", "is required"),
    ({"dataset_inputs": [{"dataset": {"name": "d", "digest": "1", "source_type": "s", "source": "x"}}] * 2},
     "dataset_inputs[1]", "has the name and digest of dataset_inputs[0]"),
    ({"model_outputs": [{"model_id": "m"}]}, "model_outputs[0].step", "is required"),
    ({"model_outputs": [{"model_id": "m", "step": 1}] * 2}, "model_outputs[1]", "is the same as model_outputs[0]"),
    ({"model_inputs": [{"model_id": ""}]}, "model_inputs[0].model_id", "must not be empty"),
    ({"host": "ftp://server"}, "host", "must be an absolute http(s) URL"),
    ({"host": "https://me:pw@server.example.com"}, "host", "must not carry user info"),
    ({"host": "http://mlflow.example.com"}, "host", "plain http to a host that is not loopback"),
    ({"deployment_name": "my.workspace"}, "deployment_name", "must be a DNS label"),
    ({"host": "https://a.example.com", "deployment_name": "b"}, "host", "either host or deployment_name"),
    ({"colour": "red"}, "colour", "is not an input of ExperimentRun"),
]


@pytest.mark.parametrize(("inputs", "prop", "words"), CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_check_names_property_problem_and_limit(inputs: dict, prop: str, words: str, monkeypatch) -> None:
    monkeypatch.delenv("PULUMI_MLFLOW_RUNS_ALLOW_HTTP", raising=False)
    base = {} if "experiment_id" in inputs or prop == "experiment_id" else OK
    _, failures = check_inputs({**base, **inputs})
    reasons = dict(failures)
    assert prop in reasons, failures
    assert words in reasons[prop]


def test_the_table_is_wide() -> None:
    assert len({(c[1], c[2]) for c in CASES}) >= 25



def _create(host: DynamicHost, **inputs):
    checked = host.check({}, with_provider(inputs, ExperimentRunProvider()))
    assert checked.failures == []
    return host.create(checked.inputs)


def test_a_deleted_experiment(host, mlflow_client) -> None:
    exp = mlflow_client.create_experiment(f"gone-{uuid.uuid4().hex}")
    mlflow_client.delete_experiment(exp)
    with pytest.raises(HostError) as info:
        _create(host, experiment_id=exp, params={"p": "1"})
    assert "runs/create failed with HTTP 400 INVALID_PARAMETER_VALUE" in info.value.details
    assert "active" in info.value.details  # the server says why
    assert mlflow_client.search_runs([exp], run_view_type=3) == []  # nothing left behind


def test_no_credentials_anywhere(tmp_path) -> None:
    env = isolated_env()
    env.update(HOME=str(tmp_path), DATABRICKS_CONFIG_FILE=str(tmp_path / "none"))
    with DynamicHost(env=env) as h:
        h.configure({})
        checked = h.check({}, with_provider({"experiment_id": "1"}, ExperimentRunProvider()))
        with pytest.raises(HostError) as info:
            h.create(checked.inputs)
    details = info.value.details
    assert "no MLflow tracking server is configured" in details
    assert "MLFLOW_TRACKING_URI" in details and "databricks:host" in details


def test_a_bad_retry_deadline_setting(mlflow_server) -> None:
    env = isolated_env()
    with DynamicHost(env={**env, "MLFLOW_TRACKING_URI": mlflow_server.url}) as h:
        h.configure({"mlflow-runs:retryDeadline": "soon"})
        with pytest.raises(HostError) as info:
            h.check({}, with_provider({"experiment_id": "1"}, ExperimentRunProvider()))
    assert "mlflow-runs:retryDeadline must be a number of seconds between 0 and 3600, got 'soon'" in info.value.details

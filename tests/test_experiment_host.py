"""Experiment through the real provider host, checked with MLflow's own client."""

from __future__ import annotations

import uuid

import pytest

from pulumi_mlflow_runs import ExperimentProvider

from support.host import HostError, with_provider


def _props(**inputs):
    return with_provider(inputs, ExperimentProvider())


def _name() -> str:
    return f"exp-{uuid.uuid4().hex[:12]}"


def test_lifecycle(host, mlflow_client) -> None:
    name = _name()
    checked = host.check({}, _props(name=name, tags={"owner": "ml", "drop": "x"}))
    assert checked.failures == []
    exp_id, outs = host.create(checked.inputs)
    assert outs["experiment_id"] == exp_id and outs["lifecycle_stage"] == "active"
    assert mlflow_client.get_experiment(exp_id).name == name
    assert host.diff(exp_id, outs, checked.inputs).changes == "none"

    renamed = host.check({}, _props(name=name + "-v2", tags={"owner": "platform"})).inputs
    d = host.diff(exp_id, outs, renamed)
    assert d.changes == "some" and d.replaces == []
    outs = host.update(exp_id, outs, renamed)
    exp = mlflow_client.get_experiment(exp_id)
    assert exp.name == name + "-v2" and exp.tags.get("owner") == "platform" and "drop" not in exp.tags
    assert host.diff(exp_id, outs, renamed).changes == "none"

    moved = host.check({}, _props(name=name + "-v2", tags={"owner": "platform"}, artifact_location="/tmp/x")).inputs
    assert host.diff(exp_id, outs, moved).replaces == ["artifact_location"]

    mlflow_client.delete_experiment(exp_id)
    read = host.read(exp_id, outs)
    assert read.outs["lifecycle_stage"] == "deleted"
    assert host.diff(exp_id, read.outs, renamed).changes == "some"
    host.update(exp_id, read.outs, renamed)
    assert mlflow_client.get_experiment(exp_id).lifecycle_stage == "active"

    host.delete(exp_id, outs)
    host.delete(exp_id, outs)
    assert mlflow_client.get_experiment(exp_id).lifecycle_stage == "deleted"


def test_a_taken_name_says_so(host, mlflow_client) -> None:
    name = _name()
    existing = mlflow_client.create_experiment(name)
    with pytest.raises(HostError) as info:
        host.create(host.check({}, _props(name=name)).inputs)
    assert f"name: an experiment named '{name}' already exists (id {existing}) and is active" in info.value.details


def test_bad_inputs(host) -> None:
    failures = dict(host.check({}, _props(name="x" * 501, tags={"k": 3}, host="ftp://nope", color="red")).failures)
    assert "the limit is 500" in failures["name"]
    assert "must be a string" in failures["tags.k"]
    assert "http(s) URL" in failures["host"]
    assert "not an input of Experiment" in failures["color"]
    assert dict(host.check({}, _props()).failures)["name"] == "is required"


def test_destroy_then_up_takes_the_name_back_without_its_old_runs(host, mlflow_client) -> None:
    name = _name()
    inputs = host.check({}, _props(name=name, tags={"owner": "ml"})).inputs
    exp_id, outs = host.create(inputs)
    old_run = mlflow_client.create_run(exp_id).info.run_id
    host.delete(exp_id, outs)  # destroy: MLflow keeps the name taken while the experiment is in the trash
    again_id, again = host.create(inputs)
    assert again_id == exp_id and again["lifecycle_stage"] == "active"
    assert mlflow_client.get_experiment(exp_id).tags["owner"] == "ml"
    assert mlflow_client.get_run(old_run).info.lifecycle_stage == "deleted"  # the old run stays in the trash

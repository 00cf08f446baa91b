"""Experiment through the real provider host, checked with MLflow's own client."""

from __future__ import annotations

import uuid

import pytest

from pulumi_mlflow_runs import ExperimentProvider

from support.fault_proxy import FaultProxy
from support.host import DynamicHost, HostError, isolated_env, with_provider

TOKEN_TAG = "pulumi.creation_token"


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
    details = info.value.details
    assert f"name: an experiment named '{name}' already exists (id {existing}) and is active" in details
    assert f"setting the runs' experiment_id to '{existing}'" in details
    assert f"`mlflow experiments delete -x {existing}`" in details and "import_" not in details


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


def test_the_creation_token_is_the_providers_tag(host, mlflow_client) -> None:
    failures = dict(host.check({}, _props(name=_name(), tags={TOKEN_TAG: "x"})).failures)
    assert failures[f"tags.{TOKEN_TAG}"] == "is set by the provider itself and cannot be declared"

    inputs = host.check({}, _props(name=_name(), tags={"owner": "ml"})).inputs
    exp_id, outs = host.create(inputs)
    token = mlflow_client.get_experiment(exp_id).tags[TOKEN_TAG]
    read = host.read(exp_id, outs).outs
    assert read["tags"] == outs["tags"] == {"owner": "ml"}  # not a managed tag: never shown, never drift
    assert host.diff(exp_id, read, inputs).changes == "none"
    host.update(exp_id, read, host.check({}, _props(name=inputs["name"])).inputs)  # every managed tag removed
    assert mlflow_client.get_experiment(exp_id).tags == {TOKEN_TAG: token}


@pytest.fixture(scope="module")
def faulty(mlflow_server):
    with FaultProxy(mlflow_server.url) as proxy, DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=proxy.url)) as h:
        h.configure({})
        yield proxy, h


@pytest.mark.parametrize("stage", ["active", "deleted"])
def test_a_name_found_without_this_creates_token_is_not_taken_for_its_own(faulty, mlflow_client, stage) -> None:
    """A 500 leaves the outcome unknown: the experiment of that name is someone else's (no token of this
    create), so the create goes on as if the name had been taken all along: refused, or taken from the trash."""
    proxy, h = faulty
    name = _name()
    existing = mlflow_client.create_experiment(name)
    if stage == "deleted":
        mlflow_client.delete_experiment(existing)
    inputs = h.check({}, _props(name=name, tags={"owner": "ml"})).inputs
    with proxy.faults(("experiments/create", "500")):
        if stage == "active":
            with pytest.raises(HostError) as info:
                h.create(inputs)
            assert f"already exists (id {existing}) and is active" in info.value.details
        else:
            assert h.create(inputs)[0] == existing
        assert [r.endpoint for r in proxy.requests if r.endpoint.startswith("experiments/")][:3] == [
            "experiments/create", "experiments/get-by-name", "experiments/create"
        ]
    exp = mlflow_client.get_experiment(existing)
    assert exp.lifecycle_stage == "active" and TOKEN_TAG not in exp.tags
    assert exp.tags.get("owner") == (None if stage == "active" else "ml")


def test_a_create_failing_until_the_deadline_names_the_deadline_in_force(mlflow_server, mlflow_client) -> None:
    name = _name()
    with FaultProxy(mlflow_server.url) as proxy, DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=proxy.url)) as h:
        h.configure({"mlflow-runs:retryDeadline": "2"})
        proxy.fail("experiments/create", "503", times=10_000)
        with pytest.raises(HostError) as info:
            h.create(h.check({}, _props(name=name)).inputs)
        assert len([r for r in proxy.requests if r.endpoint == "experiments/create"]) >= 2  # retried
    details = info.value.details
    assert "experiments/create failed with HTTP 503" in details and "retry deadline (2s)" in details
    fix = details.split("fix: ", 1)[1]
    assert "Retries stopped at the retry deadline in force (2s)" in fix and "retryDeadline 600" in fix, fix
    assert mlflow_client.get_experiment_by_name(name) is None

"""Bringing a run that already exists under management, on each path a user has to it.

Through the provider host: the engine's import is a Read with no prior state, then Check and Diff against
the program, so a program that declares what the run holds must show no change.

Through the real Pulumi CLI: the engine's import calls Read with neither properties nor inputs, and the
SDK's dynamic host then cannot find the pickled provider (upstream pulumi/pulumi#16175): ``import_`` cannot
work for any dynamic provider. ``adopt_run_id`` is the way that works: the create takes the run over and
brings it to the program. ``ExperimentRun.get`` (a Read with inputs) reads a run without managing it.

The two harnesses do not share a scenario (the host reads a run as the engine's import would; the CLI
refuses ``import_`` and adopts instead), so the tests are not parametrized over them; they share the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest
from mlflow.entities import Metric, Param, RunTag
from pulumi.automation.errors import CommandError

from pulumi_mlflow_runs import ExperimentRun, ExperimentRunProvider

from support.host import with_provider
from support.mlflow_proxy import RecordingProxy
from support.pulumi_cli import new_stack

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def _existing_run(client: MlflowClient, experiment_id: str, **colleague_tags: str) -> str:
    """A run made by MLflow's own client, as a training job would have made it (with a colleague's tags)."""
    run = client.create_run(experiment_id, run_name="legacy-train", tags={"team": "vision", **colleague_tags})
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("loss", v, 1_700_000_000_000 + i, i) for i, v in enumerate([3.0, 2.0, 1.0])],
        params=[Param("lr", "0.01")],
        tags=[RunTag("mlflow.note.content", "old run")],
    )
    client.set_terminated(run_id, "FINISHED")
    return run_id


def test_import_with_a_matching_program_shows_no_change(host, mlflow_client, experiment_id) -> None:
    run_id = _existing_run(mlflow_client, experiment_id)
    provider = ExperimentRunProvider()
    read = host.read(run_id, with_provider({}, provider))
    assert read.id == run_id and read.inputs is not None
    assert read.inputs["params"] == {"lr": "0.01"} and read.inputs["tags"] == {"team": "vision"}
    assert read.inputs["description"] == "old run" and read.inputs["status"] == "FINISHED"
    assert [p["value"] for p in read.inputs["metrics"]] == [3.0, 2.0, 1.0]
    # The program as the README says to write it for an existing run: timestamps may be left out.
    program = {"experiment_id": experiment_id, "run_name": "legacy-train", "status": "FINISHED",
               "params": {"lr": "0.01"}, "tags": {"team": "vision"}, "description": "old run",
               "metrics": [{"key": "loss", "value": v, "step": i} for i, v in enumerate([3, 2, 1])]}
    checked = host.check(read.inputs, with_provider(program, provider))
    assert checked.failures == []
    assert host.diff(run_id, read.outs, checked.inputs).changes == "none"

    # Once adopted it is managed like any other: a new tag and a new point are an update.
    program["tags"] = {"team": "vision", "adopted": "yes"}
    program["metrics"] = [*program["metrics"], {"key": "loss", "value": 0.5, "step": 3}]
    changed = host.check(read.inputs, with_provider(program, provider)).inputs
    d = host.diff(run_id, read.outs, changed)
    assert d.changes == "some" and d.replaces == []
    host.update(run_id, read.outs, changed)
    assert mlflow_client.get_run(run_id).data.tags["adopted"] == "yes"
    history = sorted((m.step, m.value) for m in mlflow_client.get_metric_history(run_id, "loss"))
    assert history == [(0, 3.0), (1, 2.0), (2, 1.0), (3, 0.5)]


def test_a_program_that_differs_shows_the_difference(host, mlflow_client, experiment_id) -> None:
    run_id = _existing_run(mlflow_client, experiment_id)
    provider = ExperimentRunProvider()
    read = host.read(run_id, with_provider({}, provider))
    program = {"experiment_id": experiment_id, "params": {"lr": "0.1"}, "tags": {"team": "vision"}}
    d = host.diff(run_id, read.outs, host.check(read.inputs, with_provider(program, provider)).inputs)
    assert d.replaces == ["params", "metrics"]  # a different param and undeclared points: a new run


def _declared(experiment_id: str, run_id: str, **changes: Any) -> dict[str, Any]:
    """What the run holds, declared as a program would (timestamps left out)."""
    args: dict[str, Any] = {
        "experiment_id": experiment_id,
        "adopt_run_id": run_id,
        "run_name": "legacy-train",
        "status": "FINISHED",
        "params": {"lr": "0.01"},
        "tags": {"team": "vision"},
        "metrics": [{"key": "loss", "value": v, "step": i} for i, v in enumerate([3.0, 2.0, 1.0])],
    }
    return {**args, **changes}


def test_adopt_run_id_takes_the_run_over_and_converges_it(
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_env: str,
    proxy: RecordingProxy,
    mlflow_client: MlflowClient,
    experiment_id: str,
) -> None:
    run_id = _existing_run(mlflow_client, experiment_id, reviewer="bob")
    args = _declared(experiment_id, run_id, tags={"team": "vision", "adopted": "yes"})

    def program() -> None:
        run = ExperimentRun("legacy", **args)
        pulumi.export("run_id", run.run_id)

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        mark = proxy.mark()
        up = stack.up()
        assert up.outputs["run_id"].value == run_id, "the run is taken over, not made again"
        writes = proxy.writes_since(mark)
        assert [(w.endpoint, w.body.get("tags"), w.body.get("metrics")) for w in writes] == [
            ("runs/log-batch", [{"key": "adopted", "value": "yes"}], None)
        ], "only what the program adds is sent"
        run = mlflow_client.get_run(run_id)
        assert run.data.tags["reviewer"] == "bob", "a tag the program does not declare is left alone"
        assert run.data.tags["mlflow.note.content"] == "old run", "so is an undeclared description"
        assert [p.value for p in mlflow_client.get_metric_history(run_id, "loss")] == [3.0, 2.0, 1.0]
        assert len(mlflow_client.search_runs([experiment_id])) == 1

        stack.preview(expect_no_changes=True)
        # adopted, it is managed like any other run: a new point is an update, destroy deletes it
        args["metrics"] = [*args["metrics"], {"key": "loss", "value": 0.5, "step": 3}]
        stack.up()
        assert len(mlflow_client.get_metric_history(run_id, "loss")) == 4
        stack.destroy()
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    finally:
        stack.destroy()


def test_adopt_run_id_refuses_a_run_that_would_need_a_replace(
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_env: str,
    proxy: RecordingProxy,
    mlflow_client: MlflowClient,
    experiment_id: str,
) -> None:
    run_id = _existing_run(mlflow_client, experiment_id, reviewer="bob")
    before = mlflow_client.get_run(run_id)

    def program() -> None:
        ExperimentRun("legacy", **_declared(experiment_id, run_id, params={"lr": "0.1"}))

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        mark = proxy.mark()
        with pytest.raises(CommandError) as failed:
            stack.up()
        text = str(failed.value)
        assert "adopt_run_id" in text and "params" in text and "legacy" in text, text
        assert "Traceback" not in text
        assert proxy.writes_since(mark) == [], "nothing written"
        after = mlflow_client.get_run(run_id)
        assert after.data.to_dictionary() == before.data.to_dictionary()
        assert after.info.lifecycle_stage == "active"
        assert len(mlflow_client.search_runs([experiment_id])) == 1, "and nothing made"
    finally:
        stack.destroy()


def test_import_option_is_refused_with_the_way_that_works(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    run_id = _existing_run(mlflow_client, experiment_id)

    def program() -> None:
        ExperimentRun("legacy", **_declared(experiment_id, None), opts=pulumi.ResourceOptions(import_=run_id))

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": mlflow_env})
    try:
        with pytest.raises(CommandError) as failed:
            stack.preview()
        text = str(failed.value)
        assert "import_" in text and f"adopt_run_id={run_id!r}" in text, text
    finally:
        stack.destroy()


def test_get_reads_an_existing_run_without_managing_it(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    run_id = _existing_run(mlflow_client, experiment_id)

    def program() -> None:
        run = ExperimentRun.get("legacy", run_id)
        pulumi.export("params", run.params)
        pulumi.export("latest", run.latest_metrics)

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": mlflow_env})
    try:
        up = stack.up()
        assert up.outputs["params"].value == {"lr": "0.01"}
        assert up.outputs["latest"].value == {"loss": 1.0}
        stack.destroy()
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active", "read, never deleted"
    finally:
        stack.destroy()

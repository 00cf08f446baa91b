"""Adopting a run that already exists: ``import_`` and ``ExperimentRun.get`` read it through the host.

The engine's import is a Read with no prior state, then Check and Diff against the program: a program
that declares what the run holds must show no change.
"""

from __future__ import annotations

from mlflow.entities import Metric, Param, RunTag

from pulumi_mlflow_runs import ExperimentRunProvider

from support.host import with_provider


def _existing_run(client, experiment_id: str) -> str:
    """A run made by MLflow's own client, as a training job would have made it."""
    run = client.create_run(experiment_id, run_name="legacy-train", tags={"team": "vision"})
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric("loss", v, 1_700_000_000_000 + i, i) for i, v in enumerate([3, 2, 1])],
                     params=[Param("lr", "0.01")], tags=[RunTag("mlflow.note.content", "old run")])
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

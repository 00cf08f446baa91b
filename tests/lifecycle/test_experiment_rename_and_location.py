"""``Experiment`` through the real Pulumi CLI: what a rename and a new artifact location do to its runs.

* The engine hands back only the inputs of an updated dynamic resource in preview, so an output such as
  ``experiment_id`` is unknown there. ``Experiment.experiment_id`` is the resource id, which stays known:
  a rename previews as an update of the experiment and no change of its runs, as ``up`` then does.
* MLflow cannot move an experiment's artifact root, and a replacement cannot take the name the old
  experiment holds. A new ``artifact_location`` under the same name is refused by Check, in preview and in
  ``up``, before anything is deleted (with ``delete_before_replace`` too). With a new name it is a replace
  of the experiment and of every run in it.

Each program reads the experiment's ``name``, ``owner`` tag and ``location`` from stack config, so a step
changes config and keeps the program. These tests skip without a CLI, and fail instead under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest
from pulumi import automation as auto

from pulumi_mlflow_runs import Experiment, ExperimentRun

from support.mlflow_proxy import RecordingProxy
from support.pulumi_cli import changes, new_stack, run_with_ops, state_resources
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


RUNS = ("run-a", "run-b")



def _program(*, delete_before_replace: bool = False) -> Callable[[], None]:
    def program() -> None:
        config = pulumi.Config()
        exp = Experiment(
            "exp",
            name=config.require("name"),
            artifact_location=config.get("location"),
            tags={"owner": config.get("owner") or "ml"},
            opts=pulumi.ResourceOptions(delete_before_replace=delete_before_replace),
        )
        for name in RUNS:
            ExperimentRun(
                name,
                experiment_id=exp.experiment_id,
                run_name=name,
                status="FINISHED",
                params={"model": name},
                metrics=[{"key": "loss", "value": 0.5, "step": 0}, {"key": "loss", "value": 0.25, "step": 1}],
            )
        pulumi.export("experiment_id", exp.experiment_id)

    return program


def _set(stack: Any, **values: str) -> None:
    for key, value in values.items():
        stack.set_config(key, auto.ConfigValue(value=value))


def _ids(stack: Any) -> dict[str, str]:
    state = state_resources(stack)
    return {name: state[name]["id"] for name in ("exp", *RUNS)}


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- item 2: a rename previews as what up does ----------------------------------------------------------


def test_renaming_an_experiment_previews_and_updates_only_the_experiment(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("cli-exp-rename")
    stack = new_stack(pulumi_bin, tmp_path, _program(), {"MLFLOW_TRACKING_URI": proxy.url}, config={"name": name})
    try:
        # a brand new stack: the experiment id is not known yet, everything is a create, nothing is sent
        mark = proxy.mark()
        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == dict.fromkeys(("exp", *RUNS), "create"), preview.stdout
        assert "experiment_id: [unknown]" in _flat(preview.stdout)
        assert proxy.since(mark) == []

        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 4}, up.stdout  # the Stack too
        before = _ids(stack)
        assert up.outputs["experiment_id"].value == before["exp"]

        # rename and retag: the experiment is an update and its runs are unchanged, in preview ...
        _set(stack, name=name + "-renamed", owner="platform")
        mark = proxy.mark()
        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == {"exp": "update", "run-a": "same", "run-b": "same"}, preview.stdout
        text = _flat(preview.stdout)
        assert f'~ name: "{name}" => "{name}-renamed"' in text, preview.stdout
        assert "[unknown]" not in text and "replace" not in text, preview.stdout
        assert "1 to update" in text and "3 unchanged" in text, preview.stdout
        assert [r for r in proxy.since(mark) if r.is_write] == []

        # ... and in up, which sends the rename and the tag and nothing for the runs
        mark = proxy.mark()
        up, ops = run_with_ops(stack.up)
        assert ops == {"exp": "update", "run-a": "same", "run-b": "same"}, up.stdout
        assert changes(up.summary.resource_changes) == {"update": 1, "same": 3}, up.stdout
        writes = [(w.endpoint, w.body) for w in proxy.writes_since(mark)]
        assert writes == [
            ("experiments/update", {"experiment_id": before["exp"], "new_name": name + "-renamed"}),
            ("experiments/set-experiment-tag", {"experiment_id": before["exp"], "key": "owner", "value": "platform"}),
        ]
        assert _ids(stack) == before
        experiment = mlflow_client.get_experiment(before["exp"])
        assert (experiment.name, experiment.tags["owner"]) == (name + "-renamed", "platform")
        for name_ in RUNS:
            run = mlflow_client.get_run(before[name_])
            assert (run.info.experiment_id, run.info.lifecycle_stage) == (before["exp"], "active")
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()


# ---- item 5: a new artifact location ---------------------------------------------------------------------


@pytest.mark.parametrize("delete_before_replace", [False, True], ids=["create-before-delete", "delete-before-replace"])
def test_new_artifact_location_under_the_same_name_is_refused_before_anything_changes(
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_env: str,
    proxy: RecordingProxy,
    mlflow_client: MlflowClient,
    delete_before_replace: bool,
) -> None:
    name = unique("cli-exp-relocate")
    program = _program(delete_before_replace=delete_before_replace)
    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url}, config={"name": name})
    try:
        stack.up()
        before = _ids(stack)
        _set(stack, location=(tmp_path / "elsewhere").as_uri())

        for step in (stack.preview, stack.up):
            mark = proxy.mark()
            with pytest.raises(auto.errors.CommandError) as failed:
                step()
            text = _flat(str(failed.value))
            assert "property artifact_location value" in text, text
            assert "has a problem: MLflow cannot move an experiment's artifact root" in text, text
            assert "each run keeps the artifact URI it was created with" in text
            assert "change name together with artifact_location" in text
            assert "every run that moves is replaced: a new run in the new experiment" in text
            assert "Traceback" not in text
            assert [r for r in proxy.since(mark) if r.is_write] == [], "refused before anything was sent"

        assert _ids(stack) == before
        assert mlflow_client.get_experiment(before["exp"]).lifecycle_stage == "active"
        for run in RUNS:
            assert mlflow_client.get_run(before[run]).info.lifecycle_stage == "active"

        # back to the location it has: nothing to do
        stack.remove_config("location")
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()


def test_new_artifact_location_with_a_new_name_replaces_the_experiment_and_its_runs(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("cli-exp-move")
    stack = new_stack(pulumi_bin, tmp_path, _program(), {"MLFLOW_TRACKING_URI": proxy.url}, config={"name": name})
    try:
        stack.up()
        before = _ids(stack)
        location = (tmp_path / "new-root").as_uri()
        _set(stack, name=name + "-moved", location=location)

        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == dict.fromkeys(("exp", *RUNS), "replace"), preview.stdout
        up, ops = run_with_ops(stack.up)
        assert ops == dict.fromkeys(("exp", *RUNS), "replace"), up.stdout
        after = _ids(stack)
        assert not set(after.values()) & set(before.values())

        moved = mlflow_client.get_experiment(after["exp"])
        assert (moved.name, moved.artifact_location, moved.lifecycle_stage) == (name + "-moved", location, "active")
        for run_name in RUNS:
            run = mlflow_client.get_run(after[run_name])
            assert run.info.experiment_id == after["exp"]
            assert run.info.artifact_uri.startswith(location)
            assert [p.value for p in mlflow_client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.25]
            assert mlflow_client.get_run(before[run_name]).info.lifecycle_stage == "deleted"
        assert mlflow_client.get_experiment(before["exp"]).lifecycle_stage == "deleted"
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()

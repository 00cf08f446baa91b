"""What a run keeps in state, under the real Pulumi CLI: each metric point once in the outputs, the
declared points still readable by the program, and state written by an earlier version read as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi import automation as auto

from pulumi_mlflow_runs import ExperimentRun

from support.pulumi_cli import changes, exported_state, new_stack, state_resources
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Values that are never the latest of their key, so they can only be in the points themselves.
EARLY = (0.9134567, 0.5234567)
LATEST = 0.3334567


def _program(experiment_id: str, points: list[dict[str, Any]]) -> Any:
    def program() -> None:
        run = ExperimentRun(
            "curve", experiment_id=experiment_id, run_name="curve", params={"lr": "0.1"}, tags={"team": "ml"},
            metrics=points,
        )  # fmt: skip
        pulumi.export("declared", run.metrics)
        pulumi.export("logged", run.logged_points)

    return program


def _points(*values: float) -> list[dict[str, Any]]:
    return [{"key": "loss", "value": v, "step": i} for i, v in enumerate(values)]  # no timestamps


def test_points_are_kept_once_and_the_program_still_reads_its_declared_points(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(unique("cli-state"))
    declared = _points(*EARLY, LATEST)
    stack = new_stack(pulumi_bin, tmp_path, _program(experiment_id, declared), {"MLFLOW_TRACKING_URI": mlflow_env})
    try:
        up = stack.up()
        assert up.outputs["declared"].value == declared, "run.metrics is the program's own points"
        logged = up.outputs["logged"].value["loss"]
        assert logged["step"] == [0, 1, 2] and logged["value"] == [*EARLY, LATEST]
        assert all(isinstance(ts, (int, float)) and ts > 0 for ts in logged["timestamp"]), "logged with a time"

        exported = exported_state(stack)
        outputs = state_resources(stack)["curve"]["outputs"]
        assert "metrics" not in outputs
        for value in EARLY:  # the inputs, logged_points, and the stack output `logged` (`declared` too)
            assert exported.count(str(value)) == 4, (value, exported.count(str(value)))
        # run keeps what only the server has (its start time, system tags), not what another output holds
        view = outputs["run"]
        shown = {t["key"] for t in view.get("data", {}).get("tags", [])}
        assert not shown & {"team", "mlflow.runName"} and not any(key.startswith("pulumi.") for key in shown)
        assert "start_time" in view["info"] and "run_id" not in view["info"]

        assert changes(stack.preview().change_summary) == {"same": 2}
        assert changes(stack.refresh().summary.resource_changes) == {"same": 2}

        # appending logs the new point only; the logged ones keep the times they were logged with
        stack.workspace.program = _program(experiment_id, [*declared, {"key": "loss", "value": 0.25, "step": 3}])
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"update": 1, "same": 1}
        after = up.outputs["logged"].value["loss"]
        assert after["timestamp"][:3] == logged["timestamp"] and after["step"] == [0, 1, 2, 3]
        run_id = outputs["run_id"]
        assert [p.value for p in mlflow_client.get_metric_history(run_id, "loss")] == [*EARLY, LATEST, 0.25]
    finally:
        stack.destroy()


def test_state_from_before_logged_points_is_read_and_converted(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_client: MlflowClient
) -> None:
    """A stack whose outputs hold the ``metrics`` list (as earlier versions wrote) previews as no change,
    and its next update writes ``logged_points`` without logging a point twice."""
    experiment_id = mlflow_client.create_experiment(unique("cli-state-old"))
    declared = _points(*EARLY, LATEST)
    stack = new_stack(pulumi_bin, tmp_path, _program(experiment_id, declared), {"MLFLOW_TRACKING_URI": mlflow_env})
    try:
        stack.up()
        deployment = stack.export_stack()
        for res in deployment.deployment["resources"]:
            outs = res.get("outputs") or {}
            if "logged_points" in outs:
                columns = outs.pop("logged_points")["loss"]
                outs["metrics"] = [
                    {"key": "loss", "step": s, "value": v, "timestamp": t}
                    for s, v, t in zip(columns["step"], columns["value"], columns["timestamp"], strict=True)
                ]
                run_id = outs["run_id"]
        stack.import_stack(auto.Deployment(version=deployment.version, deployment=deployment.deployment))
        assert "logged_points" not in json.dumps(stack.export_stack().deployment["resources"])

        assert changes(stack.preview().change_summary) == {"same": 2}
        stack.workspace.program = _program(experiment_id, [*declared, {"key": "loss", "value": 0.25, "step": 3}])
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"update": 1, "same": 1}
        outputs = state_resources(stack)["curve"]["outputs"]
        assert "metrics" not in outputs and outputs["logged_points"]["loss"]["step"] == [0, 1, 2, 3]
        assert [p.value for p in mlflow_client.get_metric_history(run_id, "loss")] == [*EARLY, LATEST, 0.25]
    finally:
        stack.destroy()

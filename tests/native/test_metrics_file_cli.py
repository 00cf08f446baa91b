"""``metricsFile`` under the real CLI from project folders, on both doors: a training curve read from the CSV the
job writes (``examples/training-curve``, the dynamic door) and the same from a YAML program (the plugin).

What a user sees is checked where they see it: the preview names each key and how many points it gains, an
append sends only the new rows, a rewritten logged row is a replace, and the state keeps no point.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "training-curve"


def _stack(folder: Path, tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> ProjectFolder:
    env = {"MLFLOW_TRACKING_URI": proxy.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    project.init({"experimentName": unique("curve")})
    return project


@pytest.fixture
def curve_project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    """A copy of examples/training-curve (its CSV as committed: steps 0 to 99 of loss and accuracy)."""
    folder = tmp_path / "training-curve"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__"))
    project = _stack(folder, tmp_path, pulumi_bin, proxy)
    try:
        yield project
    finally:
        project.remove()


YAML_PROGRAM = {
    "name": "curve-yaml",
    "runtime": "yaml",
    "config": {"experimentName": {"type": "string"}},
    "resources": {
        "curves": {"type": "mlflow-runs:index:Experiment", "properties": {"name": "${experimentName}"}},
        "train": {
            "type": "mlflow-runs:index:ExperimentRun",
            "properties": {
                "experimentId": "${curves.experimentId}",
                "runName": "resnet50-imagenet",
                "params": {"model": "resnet50", "lr": "0.1", "batch": "256", "epochs": "90", "optimizer": "sgd"},
                "tags": {"team": "vision", "dataset": "imagenet-1k", "job": "train.py"},
                "metricsFile": {"fn::fileAsset": "./metrics/train.csv"},
            },
        },
    },
    "outputs": {"runId": "${train.runId}", "logged": "${train.metricsFileLogged}"},
}


@pytest.fixture
def yaml_curve(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    """The same run from a YAML program: the plugin, from the virtualenv pip installed it in."""
    folder = tmp_path / "curve-yaml"
    (folder / "metrics").mkdir(parents=True)
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(YAML_PROGRAM, sort_keys=False))
    shutil.copy(EXAMPLE / "metrics" / "train.csv", folder / "metrics" / "train.csv")
    shutil.copy(EXAMPLE / "train.py", folder / "train.py")
    project = _stack(folder, tmp_path, pulumi_bin, proxy)
    try:
        yield project
    finally:
        project.remove()


def _train(project: ProjectFolder) -> None:
    """One more epoch, as the job would write it: 50 steps of loss and accuracy."""
    subprocess.run([sys.executable, "train.py"], cwd=project.folder, check=True, capture_output=True)


def _state_entry(project: ProjectFolder) -> dict:
    (entry,) = [r for r in project.exported()["deployment"]["resources"] if r["urn"].endswith("::train")]
    return dict(entry)


def _curve_lifecycle(
    project: ProjectFolder, proxy: RecordingProxy, client: MlflowClient, *, points: str, run_output: str
) -> None:
    """up, an epoch appended, a row rewritten: the same on either door. ``points`` is the checked input that
    holds the points per key, ``run_output`` the stack output of the run's id, as the door spells them."""
    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()[run_output]
    assert len(client.get_metric_history(run_id, "loss")) == 100
    entry = _state_entry(project)
    size = len(json.dumps({"inputs": entry["inputs"], "outputs": entry["outputs"]}))
    assert size < 3000 and "2.8" not in json.dumps(entry), f"the state holds points ({size} bytes)"
    project.pulumi("preview", "--expect-no-changes")

    _train(project)
    with (project.folder / "metrics" / "train.csv").open("a") as f:
        f.write("loss,0.1,150")  # a row the job is still writing: it waits
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview, preview
    assert re.search(r"accuracy\s*: 100 => 150", preview) and re.search(r"loss\s*: 100 => 150", preview), preview
    assert points in preview, preview
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = [r for r in proxy.since(mark) if r.is_write]
    assert [r.endpoint for r in writes] == ["runs/log-batch"], [r.endpoint for r in writes]
    assert sorted({m["step"] for m in writes[0].body["metrics"]}) == list(range(100, 150))
    assert len(client.get_metric_history(run_id, "loss")) == 150
    project.pulumi("preview", "--expect-no-changes")
    project.pulumi("refresh", "--yes", "--skip-preview")
    project.pulumi("preview", "--expect-no-changes")

    # a logged row rewritten: a replace, and the preview says so before anything is sent
    csv = project.folder / "metrics" / "train.csv"
    csv.write_text(csv.read_text().replace("loss,2.8,0,", "loss,2.9,0,", 1))
    mark = proxy.mark()
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-1 to replace" in preview and re.search(r"- metrics_?[fF]ile\s*: asset", preview), preview
    if points == "metricsFileSummary":  # the plugin says why in the engine's log (--diff leaves that out)
        plain = project.pulumi("preview").stdout
        assert re.search(r"warning: \S*metrics/train\.csv no longer starts with the 300 rows logged from it", plain)
    assert not [r for r in proxy.since(mark) if r.is_write]
    project.pulumi("up", "--yes", "--skip-preview")
    new_id = project.outputs()[run_output]
    assert new_id != run_id and client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert (0, 2.9) in {(p.step, p.value) for p in client.get_metric_history(new_id, "loss")}
    assert len(client.get_metric_history(new_id, "loss")) == 150


def test_the_training_curve_example_on_the_dynamic_door(
    curve_project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    _curve_lifecycle(curve_project, proxy, mlflow_client, points="metrics_file_summary", run_output="run_id")


def test_a_yaml_program_on_the_plugin(
    yaml_curve: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    _curve_lifecycle(yaml_curve, proxy, mlflow_client, points="metricsFileSummary", run_output="runId")


def test_a_bad_row_fails_the_preview_naming_the_file_line_and_column(yaml_curve: ProjectFolder) -> None:
    csv = yaml_curve.folder / "metrics" / "train.csv"
    csv.write_text(csv.read_text() + "loss,fast,100,1796657933596\n")
    proc = yaml_curve.pulumi("preview", ok=False)
    assert proc.returncode != 0
    # the engine names the property and prints the asset's hash and path, then the problem
    assert re.search(
        r"property metricsFile value .* has a problem: \./metrics/train\.csv, line 202, column 2 \(value\): "
        r"must be a number \(or NaN, Infinity, -Infinity\)\n",
        proc.stdout,
    ), proc.stdout
    assert "fast" not in proc.stdout, "a failure never repeats the value"

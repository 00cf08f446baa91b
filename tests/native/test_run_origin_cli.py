"""Through the real CLI, from a Pulumi YAML program's folder on the plugin: the runs a stack makes name it (project,
stack, resource, and a table's entry) and the user of ``mlflow-runs:runUser`` in the fields MLflow's UI shows, a
table entry added by an update too; a run without those tags (one an earlier version made) previews no change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_proxy import RecordingProxy

pytestmark = pytest.mark.mlflow2
PROJECT = "mlflow-run-origin"
SHOWN = ("mlflow.source.name", "mlflow.source.type", "mlflow.user", "pulumi.project", "pulumi.stack", "pulumi.resource")


def _program(entries: list[str]) -> dict[str, Any]:
    return {
        "name": PROJECT,
        "runtime": "yaml",
        "config": {"experimentName": {"type": "string"}},
        "resources": {
            "evaluations": {"type": "mlflow-runs:index:Experiment", "properties": {"name": "${experimentName}"}},
            "trainRun": {
                "type": "mlflow-runs:index:ExperimentRun",
                "properties": {"experimentId": "${evaluations.experimentId}", "params": {"lr": "0.1"}},
            },
            "sweep": {
                "type": "mlflow-runs:index:RunTable",
                "properties": {
                    "experimentId": "${evaluations.experimentId}",
                    "runs": {key: {"params": {"seed": key}} for key in entries},
                },
            },
        },
        "outputs": {"runId": "${trainRun.runId}", "tableRunIds": "${sweep.runIds}"},
    }


@pytest.fixture
def project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    folder = tmp_path / "origin"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(_program(["seed-1"])))
    env = {"MLFLOW_TRACKING_URI": proxy.url}
    made = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, PACKAGE_VENV)
    made.init({"experimentName": unique("origin"), "mlflow-runs:runUser": "ml-platform@example.com"})
    try:
        yield made
    finally:
        made.remove()


def _tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    return dict(client.get_run(run_id).data.tags)


def test_the_runs_of_a_stack_name_it_in_the_ui(project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    project.pulumi("up", "--yes", "--skip-preview")
    outputs = project.outputs()
    stack = project.stack
    run = mlflow_client.get_run(outputs["runId"])
    assert run.info.user_id == "ml-platform@example.com"
    tags = run.data.tags
    assert tags["mlflow.source.name"] == f"pulumi · {PROJECT} · {stack} · trainRun"
    assert (tags["mlflow.source.type"], tags["mlflow.user"]) == ("LOCAL", "ml-platform@example.com")
    assert (tags["pulumi.project"], tags["pulumi.stack"], tags["pulumi.resource"]) == (PROJECT, stack, "trainRun")
    table_run = _tags(mlflow_client, outputs["tableRunIds"]["seed-1"])
    assert table_run["mlflow.source.name"] == f"pulumi · {PROJECT} · {stack} · sweep · seed-1"
    assert (table_run["pulumi.resource"], table_run["pulumi.table_entry"]) == ("sweep", "seed-1")
    project.pulumi("preview", "--diff", "--expect-no-changes")

    # An entry added by an update: its run names the table and the entry as well.
    (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(_program(["seed-1", "seed-2"])))
    project.pulumi("up", "--yes", "--skip-preview")
    added = _tags(mlflow_client, project.outputs()["tableRunIds"]["seed-2"])
    assert (added["pulumi.table_entry"], added["mlflow.user"]) == ("seed-2", "ml-platform@example.com")

    # A run made before these tags existed (taken off here) is no change: not on refresh, not in a preview.
    for key in (*SHOWN, "pulumi.note"):
        mlflow_client.delete_tag(outputs["runId"], key)
    project.pulumi("refresh", "--yes", "--skip-preview")
    project.pulumi("preview", "--diff", "--expect-no-changes")

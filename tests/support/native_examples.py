"""New stacks of copies of the example programs on the native plugin, as their users run them (the
TypeScript one, ``examples/typescript-native``, once ``npm install`` has given it its packages).

``examples/yaml-native`` gets the virtualenv pip installed the plugin into activated (a YAML program names
none); ``examples/python-native`` names none either and runs with it activated, as its ``Pulumi.yaml``
says. Both declare the same experiment and run, and export ``experimentId`` and ``runId``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_stack(name: str, tmp_path: Path, pulumi_bin: Path, tracking_uri: str) -> ProjectFolder:
    """A new stack of a copy of ``examples/<name>`` against ``tracking_uri``."""
    folder = tmp_path / name
    ignored = shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__", "node_modules")
    shutil.copytree(EXAMPLES / name, folder, ignore=ignored)
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    project.init({"experimentName": unique(name)})
    return project


def assert_example_run(client: MlflowClient, run_id: str) -> None:
    """The run both examples declare, as the server holds it after their first ``up``."""
    run = client.get_run(run_id)
    assert run.data.params == {"model": "bert-base-uncased", "batch_size": "32"}
    assert run.data.tags["reviewed_by"] == "alice" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.note.content"].startswith("BERT base")
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.92, 0.61, 0.44]
    (used,) = run.inputs.dataset_inputs  # the nested names (`sourceType`) reached the server as MLflow's
    assert (used.dataset.name, used.dataset.source_type, used.dataset.source) == ("sst2", "hf", "glue/sst2")


def assert_drift_put_back(project: ProjectFolder, client: MlflowClient, run_id: str) -> None:
    """A colleague edits the example's managed tag: refresh names the drift, the preview shows it going back,
    and the next ``up`` puts it back."""
    client.set_tag(run_id, "reviewed_by", "mallory")
    assert "mallory" in project.pulumi("refresh", "--yes", "--diff").stdout
    preview = project.pulumi("preview", "--diff").stdout
    assert re.search(r'reviewed_by\s*: "mallory" => "alice"', preview), preview
    project.pulumi("up", "--yes", "--skip-preview")
    assert client.get_run(run_id).data.tags["reviewed_by"] == "alice"

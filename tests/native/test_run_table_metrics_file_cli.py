"""``metricsFile`` in a RunTable's entries through the real CLI from project folders, on both doors: a YAML program
on the plugin, a Python program on the dynamic door. Each entry's training curve is read from the CSV its job
wrote; the state keeps no point (and a secret tag of another entry stays ciphertext); a grown file is an update
that sends that run its new rows alone, and the preview names the entry's file and how many points each key
gains; the next preview shows no change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
FILES = {"bert": "metrics/bert.csv", "roberta": "metrics/roberta.csv"}
"""The entries with a training curve, and their files in the project folder; the entry ``plain`` has none."""
SECRET = "s3cr3t-value"
"""A tag of the entry ``plain``, secret: it stays ciphertext, and the other entries' files still preview plainly."""


def _runs() -> dict[str, Any]:
    return {
        key: {"status": "FINISHED", "params": {"model": key, "lr": "0.1"}, "tags": {"team": "evals"}}
        for key in (*FILES, "plain")
    }


def _write_curve(folder: Path, key: str, steps: int) -> None:
    """The CSV a training job writes: loss and accuracy per step, each row with its timestamp."""
    rows = [f"{k},{round(1 / (s + 1), 6)},{s},{1_700_000_000_000 + s}" for s in range(steps) for k in ("loss", "acc")]
    path = folder / FILES[key]
    path.parent.mkdir(exist_ok=True)
    path.write_text("key,value,step,timestamp\n" + "\n".join(rows) + "\n")


def _yaml_program() -> dict[str, Any]:
    runs = _runs()
    for key, path in FILES.items():
        runs[key]["metricsFile"] = {"fn::fileAsset": f"./{path}"}
    runs["plain"]["tags"]["token"] = {"fn::secret": SECRET}
    return {
        "name": "run-table-curves",
        "runtime": "yaml",
        "config": {"experimentName": {"type": "string"}},
        "resources": {
            "evaluations": {"type": "mlflow-runs:index:Experiment", "properties": {"name": "${experimentName}"}},
            "table": {
                "type": "mlflow-runs:index:RunTable",
                "properties": {"experimentId": "${evaluations.experimentId}", "runs": runs},
            },
        },
        "outputs": {"runIds": "${table.runIds}"},
    }


PYTHON_PROGRAM = """\
import json
import pathlib

import pulumi

from pulumi_mlflow_runs import Experiment, RunTable

spec = json.loads(pathlib.Path("runs.json").read_text())
runs = spec["runs"]
for key, path in spec["files"].items():
    runs[key]["metrics_file"] = pulumi.FileAsset(path)
runs["plain"]["tags"]["token"] = pulumi.Output.secret(spec["secret"])
experiment = Experiment("evaluations", name=pulumi.Config().require("experimentName"))
table = RunTable("table", experiment_id=experiment.experiment_id, runs=runs)
pulumi.export("run_ids", table.run_ids)
"""


def _project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, *, door: str) -> ProjectFolder:
    folder = tmp_path / door
    folder.mkdir()
    if door == "plugin":
        (folder / "Pulumi.yaml").write_text(yaml.safe_dump(_yaml_program(), sort_keys=False))
    else:
        (folder / "Pulumi.yaml").write_text("name: dynamic-run-table-curves\nruntime: python\n")
        (folder / "__main__.py").write_text(PYTHON_PROGRAM)
        (folder / "runs.json").write_text(json.dumps({"runs": _runs(), "files": FILES, "secret": SECRET}))
    for key in FILES:
        _write_curve(folder, key, 50)
    env = {"MLFLOW_TRACKING_URI": proxy.url}
    made = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    made.init({"experimentName": unique("curves")})
    return made


def _steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(p.step for p in client.get_metric_history(run_id, "loss"))


def _curves_in_a_table(
    project: ProjectFolder, proxy: RecordingProxy, client: MlflowClient, *, ids_output: str, file_prop: str
) -> None:
    """up, a preview of no change, roberta's job writes 25 more steps: the preview names that entry's file
    (``file_prop``: the plugin's detailed diff names ``metricsFile``; the dynamic door's engine diffs the inputs,
    where the asset's path is unchanged and its summary is not) and what each key gains, the up sends that run
    those rows alone, and the next preview shows no change, before and after a refresh."""
    project.pulumi("up", "--yes", "--skip-preview")
    ids = project.outputs()[ids_output]
    assert sorted(ids) == ["bert", "plain", "roberta"]
    assert _steps(client, ids["bert"]) == _steps(client, ids["roberta"]) == list(range(50))
    assert _steps(client, ids["plain"]) == []
    (table,) = [r for r in project.exported()["deployment"]["resources"] if r["urn"].endswith("::table")]
    stored = json.dumps(table)
    assert "0.333333" not in stored and len(stored) < 16_000, f"the state holds no point ({len(stored)} bytes)"
    assert SECRET not in stored and client.get_run(ids["plain"]).data.tags["token"] == SECRET
    project.pulumi("preview", "--diff", "--expect-no-changes")

    _write_curve(project.folder, "roberta", 75)
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview and "to replace" not in preview, preview
    entry = re.search(r'"?roberta"?\s*: \{(.*?)\n {12,16}\}', preview, re.S)
    assert entry, preview
    assert re.search(rf"[+~] {file_prop}\s*:", entry.group(1)), preview
    assert re.search(r"loss\s*: 50 => 75", entry.group(1)) and re.search(r"acc\s*: 50 => 75", entry.group(1)), preview
    assert "bert" not in preview.split("Resources:")[0].split("roberta")[-1], "the other entries do not change"
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = proxy.writes_since(mark)
    assert [(r.endpoint, r.run_id) for r in writes] == [("runs/log-batch", ids["roberta"])], writes
    assert sorted({m["step"] for m in writes[0].body["metrics"]}) == list(range(50, 75)), "only the new rows"
    assert project.outputs()[ids_output] == ids
    assert _steps(client, ids["roberta"]) == list(range(75)) and _steps(client, ids["bert"]) == list(range(50))
    project.pulumi("preview", "--diff", "--expect-no-changes")
    project.pulumi("refresh", "--yes", "--skip-preview")
    project.pulumi("preview", "--diff", "--expect-no-changes")

    project.pulumi("destroy", "--yes")
    experiment_id = client.get_run(ids["bert"]).info.experiment_id
    assert not [r for r in all_runs(client, experiment_id).values() if r.info.lifecycle_stage == "active"]


@pytest.mark.parametrize(
    ("door", "ids_output", "file_prop"),
    [("plugin", "runIds", "metricsFile"), ("dynamic", "run_ids", "metrics_file_summary")],
)
def test_curves_in_a_table(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient, door: str, ids_output: str,
    file_prop: str,
) -> None:  # fmt: skip
    project = _project(tmp_path, pulumi_bin, proxy, door=door)
    try:
        _curves_in_a_table(project, proxy, mlflow_client, ids_output=ids_output, file_prop=file_prop)
    finally:
        project.remove()

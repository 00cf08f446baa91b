"""A RunTable whose entries are a file beside the program (``runsFile``), through the real CLI from project folders
on both doors: a YAML program on the plugin reading a CSV of results, a Python program on the dynamic door
reading YAML. The runs are made once; an edited cell is previewed as that entry's property and written to that
run alone; a removed row deletes its run alone; refresh and preview find nothing to do; a cell a run's rules
refuse stops the preview naming the entry, the property and the file, and the next preview after the fix is
clean. The file's entries behave as entries written in ``runs`` (tests/native/test_run_table_cli.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

HEADER = "key,status,params.model,params.seed,metrics.accuracy,tags.team,tags.reviewed_by"
YAML_PROGRAM = {
    "name": "mlflow-run-table-file",
    "runtime": "yaml",
    "config": {"experimentName": {"type": "string"}},
    "resources": {
        "evaluations": {"type": "mlflow-runs:index:Experiment", "properties": {"name": "${experimentName}"}},
        "table": {
            "type": "mlflow-runs:index:RunTable",
            "properties": {
                "experimentId": "${evaluations.experimentId}",
                "runsFile": {"fn::fileAsset": "results.csv"},
            },
        },
    },
    "outputs": {"runIds": "${table.runIds}"},
}
PYTHON_PROGRAM = """\
import pulumi

from pulumi_mlflow_runs import Experiment, RunTable

experiment = Experiment("evaluations", name=pulumi.Config().require("experimentName"))
table = RunTable("table", experiment_id=experiment.experiment_id, runs_file=pulumi.FileAsset("results.yaml"))
pulumi.export("runIds", table.run_ids)
"""


def _rows(reviewed: dict[str, str] | None = None, skip: str = "", status: str = "FINISHED") -> list[dict[str, str]]:
    return [
        {
            "key": f"eval-{i}",
            "status": status if i == 2 else "FINISHED",
            "model": f"m{i % 2}",
            "seed": str(i),
            "accuracy": str(0.5 + i / 100),
            "reviewed_by": (reviewed or {}).get(f"eval-{i}", ""),
        }
        for i in range(6)
        if f"eval-{i}" != skip
    ]


def _csv(rows: list[dict[str, str]]) -> str:
    lines = [HEADER]
    for r in rows:
        lines.append(f"{r['key']},{r['status']},{r['model']},{r['seed']},{r['accuracy']},evals,{r['reviewed_by']}")
    return "\n".join(lines) + "\n"


def _yaml(rows: list[dict[str, str]]) -> str:
    runs = {
        r["key"]: {
            "status": r["status"],
            "params": {"model": r["model"], "seed": r["seed"]},
            "metrics": [{"key": "accuracy", "value": float(r["accuracy"])}],
            "tags": {"team": "evals", **({"reviewed_by": r["reviewed_by"]} if r["reviewed_by"] else {})},
        }
        for r in rows
    }
    return yaml.safe_dump(runs)


def _project(tmp_path: Path, pulumi_bin: Path, url: str, door: str) -> tuple[ProjectFolder, Path]:
    folder = tmp_path / door
    folder.mkdir()
    if door == "plugin":
        (folder / "Pulumi.yaml").write_text(yaml.safe_dump(YAML_PROGRAM, sort_keys=False))
        results = folder / "results.csv"
    else:
        (folder / "Pulumi.yaml").write_text("name: dynamic-run-table-file\nruntime: python\n")
        (folder / "__main__.py").write_text(PYTHON_PROGRAM)
        results = folder / "results.yaml"
    made = project_folder(
        folder, pulumi_bin, tmp_path, unique("stack"), {"MLFLOW_TRACKING_URI": url}, venv=PACKAGE_VENV
    )
    made.init({"experimentName": unique("table-file")})
    return made, results


def _run_table_from_a_file(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, client: MlflowClient, door: str
) -> None:
    project, results = _project(tmp_path, pulumi_bin, proxy.url, door)
    write = _csv if door == "plugin" else _yaml
    try:
        results.write_text(write(_rows()))
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        ids = project.outputs()["runIds"]
        assert sorted(ids) == [f"eval-{i}" for i in range(6)] and len(set(ids.values())) == 6
        assert sum(r.endpoint == "runs/create" for r in proxy.since(mark)) == 6
        run = client.get_run(ids["eval-3"])
        assert (run.data.params, run.data.metrics) == ({"model": "m1", "seed": "3"}, {"accuracy": 0.53})
        assert run.data.tags["team"] == "evals" and run.info.status == "FINISHED"
        experiment_id = run.info.experiment_id
        project.pulumi("preview", "--diff", "--expect-no-changes")

        # An edited cell: the preview names the entry and the property; the up writes that run alone.
        results.write_text(write(_rows({"eval-3": "ana"})))
        preview = project.pulumi("preview", "--diff").stdout
        assert "~ 1 to update" in preview and "to replace" not in preview, preview
        assert re.search(r'"?eval-3"?\s*: \{[^}]*\+ reviewed_by\s*: "ana"', preview, re.S), preview
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        writes = proxy.writes_since(mark)
        assert writes and {r.run_id for r in writes} == {ids["eval-3"]}, [(r.endpoint, r.run_id) for r in writes]
        assert client.get_run(ids["eval-3"]).data.tags["reviewed_by"] == "ana"

        # A removed row: its run alone is deleted.
        results.write_text(write(_rows({"eval-3": "ana"}, skip="eval-5")))
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        assert [(r.endpoint, r.run_id) for r in proxy.writes_since(mark)] == [("runs/delete", ids["eval-5"])]

        project.pulumi("refresh", "--yes", "--expect-no-changes")
        project.pulumi("preview", "--diff", "--expect-no-changes")

        # A value a run's rules refuse: named by entry, property and file; nothing is written.
        results.write_text(write(_rows({"eval-3": "ana"}, skip="eval-5", status="DONE")))
        mark = proxy.mark()
        failed = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert 'runs["eval-2"].status' in said and "must be one of RUNNING" in said, said
        assert f"an entry of the runs file {results.name}" in said, said
        assert proxy.writes_since(mark) == []
        results.write_text(write(_rows({"eval-3": "ana"}, skip="eval-5")))
        project.pulumi("preview", "--diff", "--expect-no-changes")

        project.pulumi("destroy", "--yes", "--skip-preview")
        active = {i for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}
        assert active == set()
    finally:
        project.remove()


def test_a_csv_of_results_is_a_table_on_the_plugin(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    _run_table_from_a_file(tmp_path, pulumi_bin, proxy, mlflow_client, "plugin")


def test_a_yaml_file_of_runs_is_a_table_on_the_dynamic_door(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    _run_table_from_a_file(tmp_path, pulumi_bin, proxy, mlflow_client, "dynamic")

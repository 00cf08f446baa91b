"""RunTable on the dynamic door through the real CLI, from a Python program's project folder: ten runs read from a
file beside the program, an edit, a removal and a replace that each touch one run, a secret in an entry that
stays secret in the state, refresh and destroy; and a failed ``up`` finished by the next without a run made twice
(this host cannot report a partial failure: the next ``up`` takes over the runs the failed one made)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
TYPE = "pulumi-python:dynamic/mlflow:RunTable"
PROGRAM = """\
import json
import pathlib

import pulumi

from pulumi_mlflow_runs import Experiment, RunTable

spec = json.loads(pathlib.Path("runs.json").read_text())
runs = spec["runs"]
for key, value in spec.get("secret_tags", {}).items():
    runs[key]["tags"]["token"] = pulumi.Output.secret(value)
experiment = Experiment("evaluations", name=pulumi.Config().require("experimentName"))
table = RunTable("table", experiment_id=experiment.experiment_id, runs=runs, max_parallel=3)
pulumi.export("run_ids", table.run_ids)
pulumi.export("latest_metrics", table.latest_metrics)
"""


def _runs(count: int = 10) -> dict[str, Any]:
    return {
        f"eval-{i}": {
            "status": "FINISHED",
            "params": {"model": f"m{i % 3}", "seed": str(i)},
            "tags": {"team": "evals"},
            "metrics": [{"key": "acc", "value": 0.5 + i / 100, "step": s} for s in range(2)],
        }
        for i in range(count)
    }


def _write(project: ProjectFolder, runs: dict[str, Any], secret_tags: dict[str, str] | None = None) -> None:
    (project.folder / "runs.json").write_text(json.dumps({"runs": runs, "secret_tags": secret_tags or {}}))


def _project(tmp_path: Path, pulumi_bin: Path, tracking_uri: str) -> ProjectFolder:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: dynamic-run-table\nruntime: python\n")
    (folder / "__main__.py").write_text(PROGRAM)
    made = project_folder(
        folder, pulumi_bin, tmp_path, unique("stack"), {"MLFLOW_TRACKING_URI": tracking_uri}, venv=PACKAGE_VENV
    )
    made.init({"experimentName": unique("table")})
    return made


def _active(client: MlflowClient, experiment_id: str) -> set[str]:
    return {i for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


def _table(project: ProjectFolder) -> dict[str, Any]:
    (table,) = [r for r in project.exported()["deployment"]["resources"] if r["type"] == TYPE]
    return dict(table)


def test_a_table_of_runs_through_the_cli(
    tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    project = _project(tmp_path, pulumi_bin, proxy.url)
    try:
        runs = _runs()
        secret = {"eval-9": "s3cr3t-value"}
        _write(project, runs, secret)
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        ids = project.outputs()["run_ids"]
        assert sorted(ids) == sorted(runs) and len(set(ids.values())) == 10
        experiment_id = mlflow_client.get_run(ids["eval-0"]).info.experiment_id
        assert _active(mlflow_client, experiment_id) == set(ids.values())
        assert sum(r.endpoint == "runs/create" for r in proxy.since(mark)) == 10
        assert mlflow_client.get_run(ids["eval-9"]).data.tags["token"] == "s3cr3t-value"
        assert "s3cr3t-value" not in json.dumps(_table(project)), "the secret stays ciphertext in the state"
        shown = mlflow_client.get_run(ids["eval-3"]).data.tags  # the table and the entry, where the UI looks
        assert (shown["pulumi.project"], shown["pulumi.stack"]) == ("dynamic-run-table", project.stack), shown
        assert (shown["pulumi.resource"], shown["pulumi.table_entry"]) == ("table", "eval-3"), shown
        project.pulumi("preview", "--diff", "--expect-no-changes")

        # An edited tag: the preview names the entry and the property; the up writes that run alone.
        runs["eval-3"]["tags"]["reviewed_by"] = "alice"
        _write(project, runs, secret)
        preview = project.pulumi("preview", "--diff").stdout
        assert "~ 1 to update" in preview and "to replace" not in preview, preview
        assert re.search(r'"?eval-3"?\s*: \{[^}]*\+ reviewed_by\s*: "alice"', preview, re.S), preview
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        writes = proxy.writes_since(mark)
        assert writes and {r.run_id for r in writes} == {ids["eval-3"]}, [(r.endpoint, r.run_id) for r in writes]

        # A removed entry: its run alone is deleted.
        del runs["eval-5"]
        _write(project, runs, secret)
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        assert [(r.endpoint, r.run_id) for r in proxy.writes_since(mark)] == [("runs/delete", ids["eval-5"])]

        # A changed param: that run is replaced, the table updated (not replaced), the others untouched.
        runs["eval-7"]["params"]["seed"] = "77"
        _write(project, runs, secret)
        shown = project.pulumi("preview", "--diff")
        preview = shown.stdout
        assert "~ 1 to update" in preview and "to replace" not in preview, preview
        assert 'runs["eval-7"] is replaced' in preview + shown.stderr, preview + shown.stderr
        assert re.search(r'"?eval-7"?\s*: \{.*~ seed\s*: "7" => "77"', preview, re.S), preview
        mark = proxy.mark()
        project.pulumi("up", "--yes", "--skip-preview")
        after = project.outputs()["run_ids"]
        assert after["eval-7"] != ids["eval-7"]
        assert {k: v for k, v in after.items() if k != "eval-7"} == {
            k: v for k, v in ids.items() if k not in ("eval-7", "eval-5")
        }
        touched = {r.run_id for r in proxy.writes_since(mark) if r.run_id}
        assert touched <= {after["eval-7"], ids["eval-7"]}, touched
        assert mlflow_client.get_run(ids["eval-7"]).info.lifecycle_stage == "deleted"
        assert "s3cr3t-value" not in json.dumps(_table(project))
        project.pulumi("preview", "--diff", "--expect-no-changes")

        # A refresh finds nothing changed; destroy deletes every run.
        project.pulumi("refresh", "--yes", "--expect-no-changes")
        project.pulumi("preview", "--diff", "--expect-no-changes")
        project.pulumi("destroy", "--yes")
        assert _active(mlflow_client, experiment_id) == set()
    finally:
        project.remove()


def test_a_failed_up_is_finished_by_the_next_and_no_run_is_made_twice(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """The first ``up`` fails in some runs' writes (and in some rollbacks): the engine records no table, yet
    every run done stays on the server, and the error names each failed entry. The next ``up`` takes them over."""
    project = _project(tmp_path, pulumi_bin, fault_proxy.url)
    try:
        project.pulumi("config", "set", "mlflow-runs:retryDeadline", "2")
        runs = _runs(6)
        _write(project, runs)
        fault_proxy.fail("runs/log-batch", "503", nth=3, times=1000)
        fault_proxy.fail("runs/delete", "503", nth=2, times=1000)
        failed = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        text = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "Traceback" not in text, text
        named = set(re.findall(r'runs\[\\?"(eval-\d)\\?"\]', text))
        assert named and named < set(runs), text
        assert not [r for r in project.exported()["deployment"].get("resources") or [] if r["type"] == TYPE]
        experiment_id = next(
            r["outputs"]["experiment_id"]
            for r in project.exported()["deployment"]["resources"]
            if r["type"].endswith(":Experiment")
        )
        survivors = _active(mlflow_client, experiment_id)
        assert survivors, "the runs done stay on the server"

        fault_proxy.clear()
        project.pulumi("up", "--yes", "--skip-preview")
        ids = project.outputs()["run_ids"]
        assert sorted(ids) == sorted(runs)
        assert survivors <= set(ids.values()), "the runs the failed up made are the table's"
        creates = sum(r.endpoint == "runs/create" for r in fault_proxy.requests)
        assert creates == len(runs) - len(survivors), creates
        assert _active(mlflow_client, experiment_id) == set(ids.values()), "one run per entry, nothing orphaned"
        for key, run_id in ids.items():
            steps = sorted(m.step for m in mlflow_client.get_metric_history(run_id, "acc"))
            assert steps == [0, 1], (key, steps)
            assert not mlflow_client.get_run(run_id).data.tags["pulumi.resource_key"].startswith("creating:")
        project.pulumi("preview", "--diff", "--expect-no-changes")
    finally:
        project.remove()

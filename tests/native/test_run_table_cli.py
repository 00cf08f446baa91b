"""A RunTable through the real CLI, from a Pulumi YAML program's folder on the plugin: ten runs made in one ``up``,
a preview that names the entry and the property, and an edit, a removal and a replace that each touch one run;
a secret in an entry stays secret in the state; destroy deletes every run; a long table's progress, and a
Ctrl-C in its middle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, ProjectFolder, project_folder
from support.pulumi_cli import interrupter
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
TOKEN = "mlflow-runs:index:RunTable"


def _runs() -> dict[str, Any]:
    return {
        f"eval-{i}": {
            "status": "FINISHED",
            "params": {"model": f"m{i % 3}", "seed": str(i)},
            "tags": {"team": "evals"},
            "metrics": [{"key": "acc", "value": 0.5 + i / 100, "step": s} for s in range(2)],
        }
        for i in range(10)
    }


def _program(runs: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "mlflow-run-table",
        "runtime": "yaml",
        "config": {"experimentName": {"type": "string"}},
        "resources": {
            "evaluations": {"type": "mlflow-runs:index:Experiment", "properties": {"name": "${experimentName}"}},
            "table": {
                "type": TOKEN,
                "properties": {"experimentId": "${evaluations.experimentId}", "maxParallel": 3, "runs": runs},
            },
        },
        "outputs": {"runIds": "${table.runIds}", "latestMetrics": "${table.latestMetrics}"},
    }


def _write(project: ProjectFolder, runs: dict[str, Any]) -> None:
    (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(_program(runs), sort_keys=False))


def _project(tmp_path: Path, pulumi_bin: Path, tracking_uri: str) -> ProjectFolder:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text(yaml.safe_dump(_program({})))
    env = {"MLFLOW_TRACKING_URI": tracking_uri}
    made = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    made.init({"experimentName": unique("table")})
    return made


@pytest.fixture
def project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    made = _project(tmp_path, pulumi_bin, proxy.url)
    try:
        yield made
    finally:
        made.remove()


def _active(client: MlflowClient, experiment_id: str) -> set[str]:
    return {i for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


def test_a_table_of_runs_through_the_cli(
    project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    runs = _runs()
    runs["eval-9"]["tags"]["token"] = {"fn::secret": "s3cr3t-value"}  # a secret in one entry
    _write(project, runs)
    project.pulumi("up", "--yes", "--skip-preview")
    ids = project.outputs()["runIds"]
    assert sorted(ids) == sorted(runs) and len(set(ids.values())) == 10
    experiment_id = mlflow_client.get_run(ids["eval-0"]).info.experiment_id
    assert _active(mlflow_client, experiment_id) == set(ids.values())
    assert sum(r.endpoint == "runs/create" for r in proxy.requests) == 10
    assert mlflow_client.get_run(ids["eval-9"]).data.tags["token"] == "s3cr3t-value"
    (table,) = [r for r in project.exported()["deployment"]["resources"] if r["type"] == TOKEN]
    exported = yaml.safe_dump(table)
    assert "s3cr3t-value" not in exported, "the secret stays ciphertext in the state"
    project.pulumi("preview", "--diff", "--expect-no-changes")

    # An edited tag: the preview names the entry and the property, and the up writes that run alone.
    runs["eval-3"]["tags"]["reviewed_by"] = "alice"
    _write(project, runs)
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview and "replace" not in preview.split("Resources:")[-1], preview
    assert re.search(r'eval-3\s*: \{[^}]*\+ reviewed_by\s*: "alice"', preview, re.S), preview
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = proxy.writes_since(mark)
    assert writes and {r.run_id for r in writes} == {ids["eval-3"]}, [(r.endpoint, r.run_id) for r in writes]
    assert mlflow_client.get_run(ids["eval-3"]).data.tags["reviewed_by"] == "alice"

    # A removed entry: its run alone is deleted.
    del runs["eval-5"]
    _write(project, runs)
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    assert [(r.endpoint, r.run_id) for r in proxy.writes_since(mark)] == [("runs/delete", ids["eval-5"])]
    assert mlflow_client.get_run(ids["eval-5"]).info.lifecycle_stage == "deleted"

    # A changed param: that run is replaced, the table is updated (not replaced), the others stay.
    runs["eval-7"]["params"]["seed"] = "77"
    _write(project, runs)
    preview = project.pulumi("preview", "--diff")
    shown = preview.stdout + preview.stderr
    assert "~ 1 to update" in shown and "to replace" not in shown, shown
    assert 'runs["eval-7"] is replaced' in shown, shown
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    after = project.outputs()["runIds"]
    assert after["eval-7"] != ids["eval-7"]
    assert {k: v for k, v in after.items() if k != "eval-7"} == {
        k: v for k, v in ids.items() if k not in ("eval-7", "eval-5")
    }
    touched = {r.run_id for r in proxy.writes_since(mark) if r.run_id}
    assert touched <= {after["eval-7"], ids["eval-7"]}, touched
    assert mlflow_client.get_run(ids["eval-7"]).info.lifecycle_stage == "deleted"
    project.pulumi("preview", "--diff", "--expect-no-changes")

    # A refresh finds nothing changed; destroy deletes every run.
    project.pulumi("refresh", "--yes")
    project.pulumi("preview", "--diff", "--expect-no-changes")
    project.pulumi("destroy", "--yes")
    assert _active(mlflow_client, experiment_id) == set()


def test_a_partial_failure_is_recorded_and_the_next_up_finishes_only_what_is_missing(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """Some creates fail at their log-batch, and the rollback of some of those fails too: the plugin answers
    with the table as it is (a partial state), the error names each failed entry, and the next ``up`` (after a
    refresh, as ``up --refresh`` does) makes only the runs that left no trace, without a second run or point."""
    project = _project(tmp_path, pulumi_bin, fault_proxy.url)
    try:
        project.pulumi("config", "set", "mlflow-runs:retryDeadline", "2")
        runs = {key: entry for key, entry in list(_runs().items())[:6]}
        _write(project, runs)
        fault_proxy.fail("runs/log-batch", "503", nth=3, times=1000)
        fault_proxy.fail("runs/delete", "503", nth=2, times=1000)
        failed = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        text = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "Traceback" not in text, text
        named = set(re.findall(r'runs\["(eval-\d)"\]', text))
        assert named and named < set(runs), text
        (table,) = [r for r in project.exported()["deployment"]["resources"] if r["type"] == TOKEN]
        assert table.get("initErrors"), table
        recorded = table["outputs"]["runIds"]
        assert set(runs) - named <= set(recorded), "every run done is in the state"

        fault_proxy.clear()
        project.pulumi("refresh", "--yes", "--skip-preview")
        project.pulumi("up", "--yes", "--skip-preview")
        ids = project.outputs()["runIds"]
        assert sorted(ids) == sorted(runs)
        assert {k: v for k, v in ids.items() if k in recorded} == recorded, "a recorded run is finished, not made again"
        creates = sum(r.endpoint == "runs/create" for r in fault_proxy.requests)
        assert creates == len(set(runs) - set(recorded)), creates
        experiment_id = mlflow_client.get_run(ids["eval-0"]).info.experiment_id
        assert _active(mlflow_client, experiment_id) == set(ids.values()), "one run per entry"
        for key, run_id in ids.items():
            steps = sorted(m.step for m in mlflow_client.get_metric_history(run_id, "acc"))
            assert steps == [0, 1], (key, steps)
            assert not mlflow_client.get_run(run_id).data.tags["pulumi.resource_key"].startswith("creating:")
        project.pulumi("preview", "--diff", "--expect-no-changes")
    finally:
        project.remove()


def _pulumi_up(args: list[bytes]) -> bool:
    return Path(args[0].decode()).name == "pulumi" and b"up" in args


def test_a_long_table_shows_its_progress_and_a_ctrl_c_leaves_what_the_next_up_finishes(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """Fifty runs written one at a time: the engine shows a line per tenth beside the table; a Ctrl-C as the
    tenth run is being made ends the ``up`` (the plugin begins no more runs once the engine cancels: exactly
    when is the engine's, so only the outcome is checked here, and ``test_run_table_cancel`` checks the rest),
    and the next ``up`` makes each run that is missing, none twice."""
    project = _project(tmp_path, pulumi_bin, fault_proxy.url)
    try:
        runs = {f"eval-{i}": {"params": {"seed": str(i)}, "status": "FINISHED"} for i in range(50)}
        program = _program(runs)
        program["resources"]["table"]["properties"]["maxParallel"] = 1
        (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))
        sent: list[int] = []
        fault_proxy.when("runs/create", interrupter(_pulumi_up, sent), nth=10)
        first = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        assert sent, "the CLI got SIGINT mid-table"
        text = first.stdout + first.stderr
        assert "RunTable: 5 of 50 runs written" in text and "Traceback" not in text, text
        fault_proxy.clear()
        project.pulumi("refresh", "--yes", "--skip-preview")
        project.pulumi("up", "--yes", "--skip-preview")
        ids = project.outputs()["runIds"]
        assert sorted(ids) == sorted(runs)
        experiment_id = mlflow_client.get_run(ids["eval-0"]).info.experiment_id
        assert _active(mlflow_client, experiment_id) == set(ids.values()), "one run per entry"
        project.pulumi("preview", "--diff", "--expect-no-changes")
    finally:
        project.remove()


def test_import_takes_existing_runs_into_a_table_and_the_code_it_prints_previews_unchanged(
    project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    """Runs a script made (two of them with one name) become a table: keys that do not collide (the shared name
    with the start of each run's id, the entry naming the run), printed code that previews no change, and an
    entry added to it afterwards makes that run alone."""
    project.pulumi("up", "--yes", "--skip-preview")
    name = project.pulumi("config", "get", "experimentName").stdout.strip()
    experiment = mlflow_client.get_experiment_by_name(name)
    assert experiment is not None
    experiment_id = experiment.experiment_id
    made = {}
    for run_name, seed in (("bert", "1"), ("bert", "2"), ("t5", "3")):
        run = mlflow_client.create_run(experiment_id, run_name=run_name, tags={"team": "evals"})
        mlflow_client.log_param(run.info.run_id, "seed", seed)
        for step, value in enumerate([0.5, 0.7]):
            mlflow_client.log_metric(run.info.run_id, "acc", value, step=step, timestamp=1_767_225_600_000 + step)
        mlflow_client.set_terminated(run.info.run_id, "FINISHED")
        made[run.info.run_id] = run_name

    code = project.folder / "imported.yaml"
    project.pulumi("import", TOKEN, "evals", experiment_id, "--yes", "--out", str(code))
    (resource,) = yaml.safe_load(code.read_text())["resources"].values()
    entries = resource["properties"]["runs"]
    by_id = {run_id: key for key, run_id in _imported(project)["outputs"]["runIds"].items()}
    assert set(by_id) == set(made), "every active run of the experiment, and no other"
    bert = sorted(key for run_id, key in by_id.items() if made[run_id] == "bert")
    assert "t5" in entries and "runName" not in entries["t5"], entries
    assert len(bert) == 2 and all(k.startswith("bert-") and entries[k]["runName"] == "bert" for k in bert), entries

    program = _program({})
    program["resources"]["evals"] = resource
    (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))
    project.pulumi("preview", "--diff", "--expect-no-changes")

    resource["properties"]["runs"]["extra"] = {"params": {"seed": "4"}, "status": "FINISHED"}
    (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    assert sum(r.endpoint == "runs/create" for r in proxy.since(mark)) == 1
    ids = _imported(project)["outputs"]["runIds"]
    assert {ids[key] for key in ids if key != "extra"} == set(made), "the imported runs are kept"
    active = {i for i, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"}
    assert active == set(ids.values())
    # imported resources are protected: unprotect before destroy takes it
    project.pulumi("state", "unprotect", _imported(project)["urn"], "--yes")


def _imported(project: ProjectFolder) -> dict[str, Any]:
    resources = project.exported()["deployment"]["resources"]
    (table,) = [r for r in resources if r["type"] == TOKEN and r["urn"].endswith("::evals")]
    return dict(table)

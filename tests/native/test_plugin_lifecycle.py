"""The native plugin under the real CLI, from a Pulumi YAML program's folder: no SDK, the schema and the plugin.

The CLI finds ``pulumi-resource-mlflow-runs`` on PATH (the test venv's bin, where ``pip install`` puts it),
asks it for its schema, and runs ``examples/yaml-native`` (a copy) through the YAML language host. A
recording proxy in front of the test server shows what was sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.native_examples import assert_drift_put_back, assert_example_run, example_stack
from support.project import PACKAGE_VENV, ProjectFolder

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RUN = "mlflow-runs:index:ExperimentRun"


def _copy_of_example(tmp_path: Path, pulumi_bin: Path, tracking_uri: str) -> ProjectFolder:
    """A new stack of a copy of the example, its plugin from the virtualenv pip installed it in."""
    return example_stack("yaml-native", tmp_path, pulumi_bin, tracking_uri)


@pytest.fixture
def yaml_project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    project = _copy_of_example(tmp_path, pulumi_bin, proxy.url)
    try:
        yield project
    finally:
        project.remove()


def _program(project: ProjectFolder) -> dict:
    return dict(yaml.safe_load((project.folder / "Pulumi.yaml").read_text()))


def _write(project: ProjectFolder, program: dict) -> None:
    (project.folder / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))


def _run(program: dict) -> dict:
    return program["resources"]["bertSst2"]["properties"]


def test_the_plugin_serves_its_schema(yaml_project: ProjectFolder) -> None:
    plugin = PACKAGE_VENV / "bin" / "pulumi-resource-mlflow-runs"  # where pip put it; a name would ask a registry
    schema = json.loads(yaml_project.pulumi("package", "get-schema", str(plugin)).stdout)
    run = schema["resources"][RUN]
    assert run["requiredInputs"] == ["experimentId"]
    assert {"experimentId", "runName", "metrics", "datasetInputs", "artifacts"} <= set(run["inputProperties"])
    assert run["inputProperties"]["experimentId"]["replaceOnChanges"] is True
    assert schema["config"]["variables"]["token"]["secret"] is True
    assert "mlflow-runs:index:getRun" in schema["functions"]


@pytest.mark.mlflow2
def test_yaml_program_lifecycle(
    yaml_project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    project = yaml_project
    mark = proxy.mark()
    preview = project.pulumi("preview", "--diff").stdout
    assert "+ 3 to create" in preview, preview
    assert not [r for r in proxy.since(mark) if r.is_write], "a preview wrote to the server"

    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()["runId"]
    assert_example_run(mlflow_client, run_id)
    project.pulumi("preview", "--diff", "--expect-no-changes")
    # The state keeps the time the points were logged at, not the points again: the inputs hold them.
    (state,) = [r for r in project.exported()["deployment"]["resources"] if r["urn"].endswith("::bertSst2")]
    assert "loggedPoints" not in state["outputs"] and state["outputs"]["stampedAt"][0][1] == 4, state["outputs"]
    info = state["outputs"]["run"]["info"]  # nor what the other outputs hold
    assert not {"run_id", "run_uuid", "artifact_uri"} & set(info) and "start_time" in info, info

    # One appended point: the preview names it alone, and the update logs only it.
    program = _program(project)
    _run(program)["metrics"].append({"key": "loss", "value": 0.35, "step": 3})
    _write(project, program)
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview, preview
    assert re.search(r"~ metrics\s*: \[\n\s*\+ \[4\]: \{", preview), preview
    assert "[0]" not in preview and "accuracy" not in preview, preview  # no positional noise
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = [r for r in proxy.since(mark) if r.is_write]
    assert [r.endpoint for r in writes] == ["runs/log-batch"], [r.endpoint for r in writes]
    assert [m["key"] for m in writes[0].body["metrics"]] == ["loss"] and len(writes[0].body["metrics"]) == 1

    assert_drift_put_back(project, mlflow_client, run_id)

    # A changed param is a replace, and the preview says why.
    program = _program(project)
    _run(program)["params"]["batch_size"] = "64"
    _write(project, program)
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-1 to replace" in preview and re.search(r'batch_size\s*: "32" => "64"', preview), preview
    project.pulumi("up", "--yes", "--skip-preview")
    new_id = project.outputs()["runId"]
    assert new_id != run_id and mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert mlflow_client.get_run(new_id).data.params["batch_size"] == "64"

    # `up --replace` of an unchanged run: Create is asked as for a new resource and takes the run back (it is
    # what the program declares); the engine's delete of the replaced resource keeps it, and says so.
    urn = next(r["urn"] for r in project.exported()["deployment"]["resources"] if r["urn"].endswith("::bertSst2"))
    forced = project.pulumi("up", "--yes", "--skip-preview", "--replace", urn)
    assert project.outputs()["runId"] == new_id and mlflow_client.get_run(new_id).info.lifecycle_stage == "active"
    assert f"run {new_id} is kept: the replace took it back" in forced.stdout + forced.stderr, forced.stdout
    project.pulumi("preview", "--diff", "--expect-no-changes")

    project.pulumi("destroy", "--yes")
    assert mlflow_client.get_run(new_id).info.lifecycle_stage == "deleted"


@pytest.mark.mlflow2
def test_an_edited_file_previews_as_that_file(yaml_project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    project = yaml_project
    project.pulumi("up", "--yes", "--skip-preview")
    program = _program(project)
    _run(program)["artifacts"]["report.md"]["fn::stringAsset"] += "\nReviewed.\n"
    _write(project, program)
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview, preview
    assert "report.md" in preview and "metrics" not in preview and "params" not in preview, preview
    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()["runId"]
    local = mlflow_client.download_artifacts(run_id, "report.md", str(project.folder))
    assert Path(local).read_text().endswith("Reviewed.\n")


@pytest.mark.mlflow2
def test_import_adopts_a_run_and_the_code_it_prints_previews_unchanged(
    yaml_project: ProjectFolder, mlflow_client: MlflowClient
) -> None:
    project = yaml_project
    project.pulumi("up", "--yes", "--skip-preview")
    experiment_id = project.outputs()["experimentId"]
    legacy = mlflow_client.create_run(experiment_id, run_name="legacy", tags={"team": "vision"})
    run_id = legacy.info.run_id
    mlflow_client.log_param(run_id, "lr", "0.01")
    for step, value in enumerate([3.0, 2.0, 1.0]):
        mlflow_client.log_metric(run_id, "loss", value, step=step, timestamp=1_767_225_600_000 + step)
    mlflow_client.set_terminated(run_id, "FINISHED")

    code = project.folder / "imported.yaml"
    project.pulumi("import", RUN, "legacy", run_id, "--yes", "--out", str(code))
    generated = yaml.safe_load(code.read_text())
    (resource,) = generated["resources"].values()
    assert resource["properties"]["params"] == {"lr": "0.01"}, resource
    assert len(resource["properties"]["metrics"]) == 3, resource

    program = _program(project)
    program["resources"].update(generated["resources"])
    _write(project, program)
    project.pulumi("preview", "--diff", "--expect-no-changes")
    assert mlflow_client.get_run(run_id).data.tags["team"] == "vision"
    # imported resources are protected: unprotect before destroy takes it
    project.pulumi("state", "unprotect", next(iter(_urns(project, "legacy"))), "--yes")


def _urns(project: ProjectFolder, name: str) -> list[str]:
    resources = project.exported()["deployment"]["resources"]
    return [r["urn"] for r in resources if r["urn"].endswith(f"::{name}")]


@pytest.mark.mlflow2
def test_secrets_stay_secret_in_state(yaml_project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    project = yaml_project
    program = _program(project)
    _run(program)["params"]["api_key"] = {"fn::secret": "s3cr3t-param-value"}
    _write(project, program)
    project.pulumi("up", "--yes", "--skip-preview")
    state = project.pulumi("stack", "export").stdout
    assert "s3cr3t-param-value" not in state
    run_id = project.outputs()["runId"]
    assert mlflow_client.get_run(run_id).data.params["api_key"] == "s3cr3t-param-value"
    resource = next(r for r in json.loads(state)["deployment"]["resources"] if r["urn"].endswith("::bertSst2"))
    for key in ("params", "run"):  # the param itself, and the run view that repeats it
        assert "ciphertext" in json.dumps(resource["outputs"][key]), key


@pytest.mark.mlflow2
@pytest.mark.parametrize(
    "faults",
    [
        [("runs/create", "429"), ("runs/log-batch", "503")],
        [("runs/create", "drop-after"), ("runs/log-batch", "drop-after")],
        [("runs/log-batch", "500-after")],
    ],
    ids=["429-503", "drop-after", "500-after"],
)
@pytest.mark.parametrize("example", ["yaml-native", "python-native"])
def test_faults_through_the_plugin_leave_one_run_with_each_point_once(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient, faults: list, example: str
) -> None:
    """The plugin runs the core's exactly-once create and retries: whatever the server went through, the
    experiment holds one run of this resource and each declared point once (or none, and a clear error);
    the same for the YAML program and the Python one."""
    project = example_stack(example, tmp_path, pulumi_bin, fault_proxy.url)
    try:
        for endpoint, fault in faults:
            fault_proxy.fail(endpoint, fault, retry_after=1.0 if fault == "429" else None)
        first = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        if first.returncode != 0:  # a failure the core does not retry (a write of uncertain outcome): run again
            assert "fix:" in first.stdout + first.stderr and "Traceback" not in first.stdout + first.stderr, first
            project.pulumi("up", "--yes", "--skip-preview")
        assert fault_proxy.fired() == len(faults)
        outputs = project.outputs()
        runs = mlflow_client.search_runs([outputs["experimentId"]], run_view_type=1)  # active only
        assert [r.info.run_id for r in runs] == [outputs["runId"]], "a run was orphaned or made twice"
        history = mlflow_client.get_metric_history(outputs["runId"], "loss")
        assert sorted((m.step, m.value) for m in history) == [(0, 0.92), (1, 0.61), (2, 0.44)]
        project.pulumi("preview", "--expect-no-changes")
    finally:
        project.remove()


@pytest.mark.mlflow2
def test_get_run_and_search_runs_as_invokes(yaml_project: ProjectFolder) -> None:
    project = yaml_project
    program = _program(project)
    program["variables"] = {
        "found": {"fn::invoke": {"function": "mlflow-runs:index:getRun", "arguments": {"runId": "${bertSst2.runId}"}}},
        "searched": {
            "fn::invoke": {
                "function": "mlflow-runs:index:searchRuns",
                "arguments": {
                    "experimentIds": ["${evaluations.experimentId}"],
                    "filter": "attributes.run_name = 'bert-sst2' and params.model = '${bertSst2.params.model}'",
                },
            }
        },
    }
    program["outputs"]["foundParams"] = "${found.params}"
    program["outputs"]["searchedIds"] = "${searched.runs[0].runId}"
    _write(project, program)
    project.pulumi("up", "--yes", "--skip-preview")
    outputs = project.outputs()
    assert outputs["foundParams"] == {"model": "bert-base-uncased", "batch_size": "32"}
    assert outputs["searchedIds"] == outputs["runId"]


def _points_once(mlflow_client: MlflowClient, run_id: str, key: str) -> list[int]:
    steps = [m.step for m in mlflow_client.get_metric_history(run_id, key)]
    assert len(steps) == len(set(steps)), f"{len(steps) - len(set(steps))} points of {key!r} logged twice"
    return sorted(steps)


@pytest.mark.mlflow2
def test_an_update_that_fails_part_way_is_finished_without_logging_a_point_twice(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """1,500 appended points without timestamps go in two log-batches; the second fails for good. The plugin
    reports a partial failure, and the next ``up`` reads the run and logs only the 500 it lacks (the state
    before it, trusted, would have the first 1,000 logged again with new timestamps)."""
    project = _copy_of_example(tmp_path, pulumi_bin, fault_proxy.url)
    try:
        project.pulumi("config", "set", "mlflow-runs:retryDeadline", "2")
        project.pulumi("up", "--yes", "--skip-preview")
        run_id = project.outputs()["runId"]
        program = _program(project)
        _run(program)["metrics"] += [{"key": "loss", "value": 0.3, "step": step} for step in range(3, 1503)]
        _write(project, program)

        fault_proxy.fail("runs/log-batch", "503", nth=2, times=1000)
        failed = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        assert failed.returncode != 0 and "updated only in part" in failed.stdout, failed.stdout
        assert len(_points_once(mlflow_client, run_id, "loss")) == 1003  # the first batch is on the server
        (resource,) = [r for r in project.exported()["deployment"]["resources"] if r["urn"].endswith("::bertSst2")]
        assert "run" not in resource["outputs"] and resource.get("initErrors"), resource.get("initErrors")

        fault_proxy.clear()
        assert "~ 1 to update" in project.pulumi("preview", "--diff").stdout
        project.pulumi("refresh", "--yes")  # reads what the failed update logged; the next up still knows
        project.pulumi("up", "--yes", "--skip-preview")
        assert _points_once(mlflow_client, run_id, "loss") == list(range(1503))
        batches = [r for r in fault_proxy.since(0) if r.endpoint == "runs/log-batch"]
        assert sum(len(r.body.get("metrics") or []) for r in batches) == 500, "only the missing points are sent"
        project.pulumi("preview", "--expect-no-changes")
        project.pulumi("refresh", "--yes", "--expect-no-changes")
    finally:
        project.remove()


@pytest.mark.mlflow2
def test_a_create_whose_run_cannot_be_rolled_back_is_kept_in_the_state(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """The server fails the create's log-batch and then its rollback: the plugin reports the run as a partial
    failure, so the engine records it. A refresh keeps it unfinished; the next ``up`` finishes that run (no
    second one, each point once, no unfinished mark), and ``destroy`` reaches it."""
    project = _copy_of_example(tmp_path, pulumi_bin, fault_proxy.url)
    try:
        project.pulumi("config", "set", "mlflow-runs:retryDeadline", "2")
        fault_proxy.fail("runs/log-batch", "503", times=1000)
        fault_proxy.fail("runs/delete", "503", times=1000)
        failed = project.pulumi("up", "--yes", "--skip-preview", ok=False)
        text = failed.stdout + failed.stderr
        assert failed.returncode != 0 and "could not be deleted" in text and "Traceback" not in text, text
        resources = project.exported()["deployment"]["resources"]
        (kept,) = [r for r in resources if r["urn"].endswith("::bertSst2")]
        run_id = kept["id"]
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"

        fault_proxy.clear()
        # A refresh in between (as `up --refresh` does) reads the run whole and keeps it unfinished: the
        # model found it crashing on the declared points, or else recording the run as done, mark and all.
        project.pulumi("refresh", "--yes", "--skip-preview")
        assert "~ 1 to update" in project.pulumi("preview").stdout
        project.pulumi("up", "--yes", "--skip-preview")
        outputs = project.outputs()
        assert outputs["runId"] == run_id
        active = mlflow_client.search_runs([outputs["experimentId"]], run_view_type=1)
        assert [r.info.run_id for r in active] == [run_id], "a second run was made"
        assert _points_once(mlflow_client, run_id, "loss") == [0, 1, 2]
        run = mlflow_client.get_run(run_id)
        assert not run.data.tags["pulumi.resource_key"].startswith("creating:"), run.data.tags
        assert run.data.params == {"model": "bert-base-uncased", "batch_size": "32"}
        project.pulumi("preview", "--expect-no-changes")
        project.pulumi("destroy", "--yes")
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    finally:
        project.remove()


def test_a_configuration_error_names_the_plugins_own_keys(yaml_project: ProjectFolder) -> None:
    """The core's messages name the dynamic door's keys (``mlflow:password``); a plugin user sets others."""
    yaml_project.pulumi("config", "set", "mlflow-runs:username", "bob")
    failed = yaml_project.pulumi("preview", ok=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "'mlflow-runs:username' is set without 'mlflow-runs:password'" in text, text
    assert "pulumi config set --secret mlflow-runs:password" in text and "mlflow:password" not in text, text

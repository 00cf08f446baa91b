"""The native resources in a Python program, under the real CLI from its project folder.

``examples/python-native`` (a copy) runs through the Python language host; the engine runs its resources
on ``pulumi-resource-mlflow-runs``, which it finds on PATH because the user runs ``pulumi`` with the
virtualenv that pip installed the package into activated (the example's ``Pulumi.yaml`` names none). Edits
are made to the program's text, as a user makes them. The faults run for this program and the YAML one in
``test_plugin_lifecycle.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.mlflow_proxy import RecordingProxy
from support.native_examples import assert_drift_put_back, assert_example_run, example_stack
from support.project import ProjectFolder

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

RUN = "mlflow-runs:index:ExperimentRun"
AMBIENT = "warning: using pulumi-resource-mlflow-runs from $PATH at"


@pytest.fixture
def project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy) -> Iterator[ProjectFolder]:
    found = example_stack("python-native", tmp_path, pulumi_bin, proxy.url)
    try:
        yield found
    finally:
        found.remove()


def edit(project: ProjectFolder, old: str, new: str) -> None:
    """Replace one piece of the program's text, which must be there exactly once."""
    program = project.folder / "__main__.py"
    text = program.read_text()
    assert text.count(old) == 1, f"{old!r} is not in the program exactly once"
    program.write_text(text.replace(old, new))


def test_python_program_lifecycle(project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient) -> None:
    mark = proxy.mark()
    preview = project.pulumi("preview", "--diff")
    assert "+ 3 to create" in preview.stdout, preview.stdout
    # The engine warns of every plugin it takes from PATH, and of nothing else here.
    warnings = [line for line in (preview.stdout + preview.stderr).splitlines() if "warning" in line.lower()]
    assert warnings and all(w.strip().startswith(AMBIENT) for w in warnings), warnings
    assert not [r for r in proxy.since(mark) if r.is_write], "a preview wrote to the server"

    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()["runId"]
    assert_example_run(mlflow_client, run_id)  # the nested names (`source_type`) reached the server too
    assert project.outputs()["latestMetrics"] == {"loss": 0.44, "accuracy": 0.924}
    project.pulumi("preview", "--diff", "--expect-no-changes")

    # One appended point: the preview names it alone, and the update logs only it.
    edit(project, '{"key": "accuracy", "value": 0.924, "step": 2},', '{"key": "accuracy", "value": 0.924, "step": 2},\n'
         '        {"key": "loss", "value": 0.35, "step": 3},')  # fmt: skip
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview, preview
    assert re.search(r"~ metrics\s*: \[\n\s*\+ \[4\]: \{", preview), preview
    assert "[0]" not in preview and "accuracy" not in preview, preview
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = [r for r in proxy.since(mark) if r.is_write]
    assert [r.endpoint for r in writes] == ["runs/log-batch"], [r.endpoint for r in writes]
    assert len(writes[0].body["metrics"]) == 1

    assert_drift_put_back(project, mlflow_client, run_id)

    # A changed param is a replace, and the preview says why.
    edit(project, '"batch_size": "32"', '"batch_size": "64"')
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-1 to replace" in preview and re.search(r'batch_size\s*: "32" => "64"', preview), preview
    project.pulumi("up", "--yes", "--skip-preview")
    new_id = project.outputs()["runId"]
    assert new_id != run_id and mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"

    project.pulumi("destroy", "--yes")
    assert mlflow_client.get_run(new_id).info.lifecycle_stage == "deleted"


def test_a_param_named_like_a_property_is_kept_as_written(project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    """Only this package's names are renamed on the wire, never a key the user wrote; a dataset input
    without tags (which the state holds as ``tags: {}``) is no change either."""
    edit(project, '"batch_size": "32"', '"batch_size": "32", "run_name": "x", "datasetName": "y"')
    imdb = '{"dataset": {"name": "imdb", "digest": "77", "source_type": "hf", "source": "imdb"}}'
    edit(project, "    dataset_inputs=[\n", f"    dataset_inputs=[\n        {imdb},\n")
    edit(project, 'tags={"reviewed_by": "alice"}', 'tags={"reviewed_by": "alice", "experiment_id": "z"}')
    project.pulumi("up", "--yes", "--skip-preview")
    run = mlflow_client.get_run(project.outputs()["runId"])
    assert {"run_name": "x", "datasetName": "y"}.items() <= run.data.params.items(), run.data.params
    assert run.data.tags["experiment_id"] == "z"
    project.pulumi("preview", "--diff", "--expect-no-changes")


def test_import_and_get(project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    """``pulumi import`` adopts a colleague's run without touching it; ``ExperimentRun.get`` reads one."""
    project.pulumi("up", "--yes", "--skip-preview")
    experiment_id = project.outputs()["experimentId"]
    legacy = mlflow_client.create_run(experiment_id, run_name="legacy", tags={"team": "vision"})
    run_id = legacy.info.run_id
    mlflow_client.log_param(run_id, "lr", "0.01")
    mlflow_client.log_metric(run_id, "loss", 1.5, step=0, timestamp=1_767_225_600_000)
    mlflow_client.set_terminated(run_id, "FINISHED")

    # The language host built here predates code generation (GenerateProgram): test_python_import_code.py
    # generates the Python code through a host that does, and runs it.
    project.pulumi("import", RUN, "legacy", run_id, "--yes", "--protect=false", "--generate-code=false")
    state = project.exported()["deployment"]["resources"]
    (imported,) = [r for r in state if r["urn"].endswith("::legacy")]
    assert imported["id"] == run_id and imported["inputs"]["params"] == {"lr": "0.01"}, imported
    assert mlflow_client.get_run(run_id).data.tags["team"] == "vision"

    # The program declares what the import recorded: the next preview shows no change.
    edit(project, 'pulumi.export("experimentId"', "legacy = ExperimentRun(\n"
         '    "legacy", experiment_id=experiment.experiment_id, run_name="legacy", status="FINISHED",\n'
         '    params={"lr": "0.01"}, tags={"team": "vision"},\n'
         '    metrics=[{"key": "loss", "value": 1.5, "step": 0, "timestamp": 1_767_225_600_000}],\n'
         ")\n"
         'pulumi.export("experimentId"')  # fmt: skip
    project.pulumi("preview", "--diff", "--expect-no-changes")
    edit(project, 'pulumi.export("experimentId"', f'seen = ExperimentRun.get("seen", "{run_id}")\n'
         'pulumi.export("seenParams", seen.params)\n'
         'pulumi.export("seenName", seen.run_name)\n'
         'pulumi.export("experimentId"')  # fmt: skip
    project.pulumi("up", "--yes", "--skip-preview")
    outputs = project.outputs()
    assert outputs["seenParams"] == {"lr": "0.01"} and outputs["seenName"] == "legacy", outputs
    assert mlflow_client.get_run(run_id).data.tags["team"] == "vision"


def test_secrets_stay_secret_in_state(project: ProjectFolder, mlflow_client: MlflowClient) -> None:
    edit(project, '"batch_size": "32"', '"batch_size": "32", "api_key": pulumi.Output.secret("s3cr3t-param-value")')
    project.pulumi("up", "--yes", "--skip-preview")
    state = project.pulumi("stack", "export").stdout
    assert "s3cr3t-param-value" not in state
    assert mlflow_client.get_run(project.outputs()["runId"]).data.params["api_key"] == "s3cr3t-param-value"
    resource = next(r for r in json.loads(state)["deployment"]["resources"] if r["urn"].endswith("::bertSst2"))
    for key in ("params", "run"):  # the param itself, and the run view that repeats it
        assert "ciphertext" in json.dumps(resource["outputs"][key]), key

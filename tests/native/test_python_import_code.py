"""``pulumi import`` in a Python project: the code the CLI's own Python code generator prints runs, on the
generated Python SDK (``sdk/python``, ``pulumi_mlflow_runs_native``, the package the schema's
``language.python`` names), and previews no change.

The Python language host built here (sdk/v3 v3.68.0) predates code generation, so the ``pulumi import``
runs with ``tools/sdk-gen/codegenhost`` first on PATH: that host answers GenerateProgram with pkg/v3's
``codegen/python`` at the CLI's version, as the current host does, and passes every other call to the
host beside the CLI. The preview then runs through that host alone, from the project's folder, with the
user's virtualenv (the package's wheel and the SDK's, installed by pip) activated. What is imported: an
experiment, a run and a table of two more runs, all made by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.once import built_once
from support.project import ProjectFolder, project_folder
from support.python_sdk import codegen_host, sdk_wheel, user_venv
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

# Builds the host with Go (from the build cache the CLI's build filled: the same pkg/v3 packages and flags).
pytestmark = pytest.mark.timeout(900)
START = 1_767_225_600_000


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the SDK's wheel, the folder of the code-generating host), each built once per run."""
    return (
        built_once(tmp_path_factory, "python-sdk", sdk_wheel),
        built_once(tmp_path_factory, "codegen-host", codegen_host),
    )


def _colleagues_runs(client: MlflowClient) -> tuple[str, str, list[str]]:
    """An experiment, a finished run made by hand with what a run holds (params, tags, a note, two metrics
    of several points each, a dataset input), and two evaluation runs for a table."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    experiment_id = client.create_experiment(unique("imported"), tags={"team": "vision"})
    tags = {"owner": "alice", "mlflow.note.content": "Baseline."}
    run = client.create_run(experiment_id, run_name="legacy", tags=tags)
    run_id = run.info.run_id
    client.log_param(run_id, "lr", "0.01")
    client.log_param(run_id, "batch_size", "32")
    for step, (loss, accuracy) in enumerate([(0.9, 0.71), (0.6, 0.84), (0.4, 0.9)]):
        client.log_metric(run_id, "loss", loss, step=step, timestamp=START + step)
        client.log_metric(run_id, "accuracy", accuracy, step=step, timestamp=START + step)
    dataset = Dataset(name="sst2", digest="d41d8cd9", source_type="hf", source="glue/sst2")
    client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    client.set_terminated(run_id, "FINISHED")
    evaluations = []
    for name, score in (("eval-sst2", 0.91), ("eval-imdb", 0.88)):
        evaluation = client.create_run(experiment_id, run_name=name).info.run_id
        client.log_param(evaluation, "dataset", name.removeprefix("eval-"))
        client.log_metric(evaluation, "accuracy", score, step=0, timestamp=START)
        client.set_terminated(evaluation, "FINISHED")
        evaluations.append(evaluation)
    return experiment_id, run_id, evaluations


def test_the_code_pulumi_import_prints_for_python_runs_on_the_generated_sdk_and_previews_no_change(
    tmp_path: Path,
    pulumi_bin: Path,
    wheel: Path,
    mlflow_server: MlflowServer,
    mlflow_client: MlflowClient,
    tools: tuple[Path, Path],
) -> None:
    wheel_of_sdk, host_dir = tools
    experiment_id, run_id, evaluations = _colleagues_runs(mlflow_client)
    folder = tmp_path / "imported-runs"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: imported-runs\nruntime: python\n")
    (folder / "__main__.py").write_text("import pulumi\n")  # nothing declared yet
    venv = user_venv(tmp_path / "venv", wheel, wheel_of_sdk)  # what `pip install` of the two gives
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=venv)
    project.init()
    try:
        importing = ProjectFolder(folder, _with_codegen_host(project.env, host_dir, pulumi_bin), project.stack)
        (folder / "resources.json").write_text(json.dumps({"resources": [
            {"type": "mlflow-runs:index:Experiment", "name": "vision", "id": experiment_id},
            {"type": "mlflow-runs:index:ExperimentRun", "name": "legacy", "id": run_id},
            {"type": "mlflow-runs:index:RunTable", "name": "evals", "id": f"{experiment_id}:{','.join(evaluations)}"},
        ]}))  # fmt: skip
        importing.pulumi("import", "--file", "resources.json", "--yes", "--out", "imported.py")
        code = (folder / "imported.py").read_text()
        assert "import pulumi_mlflow_runs_native as mlflow_runs" in code, code
        assert re.search(r"mlflow_runs\.ExperimentRun\(\"legacy\"", code), code
        assert '"lr": "0.01"' in code and "protect=True" in code, code
        assert re.search(r"mlflow_runs\.RunTable\(\"evals\"", code) and '"eval-imdb": {' in code, code

        (folder / "__main__.py").write_text(code)
        preview = project.pulumi("preview", "--diff", "--expect-no-changes").stdout
        assert re.search(r"^\s*4 unchanged$", preview, re.M), preview  # the stack, the experiment, the run, the table
        run = mlflow_client.get_run(run_id)
        assert run.data.tags["owner"] == "alice" and run.data.params["lr"] == "0.01"
    finally:
        project.pulumi("state", "unprotect", "--all", "--yes", ok=False)
        project.remove()


def _with_codegen_host(env: dict[str, str], host_dir: Path, pulumi_bin: Path) -> dict[str, str]:
    """``env`` with the code-generating host first on PATH, wrapping the one beside the CLI."""
    wrapped = pulumi_bin / "pulumi-language-python"
    return {**env, "PATH": f"{host_dir}:{env['PATH']}", "PULUMI_MLFLOW_RUNS_PYTHON_HOST": str(wrapped)}

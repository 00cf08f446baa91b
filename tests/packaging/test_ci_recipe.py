"""The CI recipe (examples/ci/pulumi-mlflow.yml) as far as this machine can run it.

The workflow's own steps are read from the file: each job's install step runs in a clean copy of the
checkout (what ``actions/checkout`` gives), then the command its ``pulumi/actions`` step names runs in its
``work-dir`` with the CLI from ``scripts/pulumi-cli.sh``, a local file backend, and a local MLflow server for
the Databricks workspace of the ``up`` job. The preview job gets no server and no credential at all, as the
workflow says it needs none. A workflow edited away from what works, or away from this test, fails it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.project import project_folder, user_env
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "pulumi-mlflow.yml"
_ENV_REF = re.compile(r"\$\{\{\s*env\.(\w+)\s*\}\}")


def _job(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text())["jobs"][name])


def _install_step(job: dict[str, Any]) -> str:
    (step,) = [s for s in job["steps"] if s.get("name") == "Install the provider"]
    return str(step["run"])


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    workflow_env = yaml.safe_load(WORKFLOW.read_text())["env"]
    return {k: _ENV_REF.sub(lambda m: str(workflow_env[m.group(1)]), str(v)) for k, v in step["with"].items()}


def _command(step: dict[str, Any]) -> list[str]:
    """The CLI command ``pulumi/actions`` runs for these inputs."""
    words = [step["command"]]
    if step["command"] in ("up", "destroy", "refresh"):
        words += ["--yes", "--skip-preview"]
    if str(step.get("diff", "false")).lower() == "true":
        words.append("--diff")
    return words


def clean_checkout(dest: Path) -> Path:
    """The files git has (committed or not yet, none it ignores) copied to ``dest``: no venv, no build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def test_the_recipe_has_the_steps_this_test_runs() -> None:
    for name, command in (("preview", "preview"), ("up", "up")):
        job = _job(name)
        assert "pip install" in _install_step(job)
        step = _pulumi_step(job)
        assert step["command"] == command and step["diff"].lower() == "true", step
        assert (ROOT / step["work-dir"] / "Pulumi.yaml").exists(), step["work-dir"]


@pytest.mark.timeout(900)
def test_the_recipe_previews_then_applies(
    tmp_path: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    checkout = clean_checkout(tmp_path / "checkout")
    stack = unique("prod")
    experiment = unique("ci-recipe")
    home = tmp_path / "runner"
    outputs: dict[str, Any] = {}
    try:
        for job_name in ("preview", "up"):
            job = _job(job_name)
            if job_name == "up":  # a new runner, a new checkout: the install step runs again in it
                shutil.rmtree(checkout / ".venv")
            install = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", _install_step(job)],
                cwd=checkout, capture_output=True, text=True, timeout=600, check=False,
                env=user_env(pulumi_bin, home),  # the runner's shell: setup-python's python3, no venv
            )  # fmt: skip
            assert install.returncode == 0, f"{job_name}'s install step:\n{install.stdout}\n{install.stderr}"

            step = _pulumi_step(job)
            server = {"MLFLOW_TRACKING_URI": mlflow_server.url} if job_name == "up" else {}
            project = project_folder(checkout / step["work-dir"], pulumi_bin, home, stack, server)
            if job_name == "preview":
                project.init({"experimentName": experiment})
            result = project.pulumi(*_command(step))
            if job_name == "preview":
                assert mlflow_client.get_experiment_by_name(experiment) is None, "the preview created something"
                assert re.search(r"\+ \d+ to create", result.stdout), result.stdout
            else:
                outputs = project.outputs()
        runs = all_runs(mlflow_client, outputs["experiment_id"])
        assert {r.info.run_name for r in runs.values()} == set(outputs["results"]), outputs
        project.pulumi("preview", "--expect-no-changes")
    finally:
        project_folder(checkout / "examples" / "evaluation-as-data", pulumi_bin, home, stack, {
            "MLFLOW_TRACKING_URI": mlflow_server.url
        }).remove()  # fmt: skip

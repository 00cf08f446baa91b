"""The plugin installed as providers are installed: ``pulumi plugin install resource mlflow-runs VERSION --file``
with the archive ``scripts/plugin-archive.sh`` builds, then a YAML program that uses it with no virtualenv
of the project anywhere on PATH (the engine must take the installed plugin, not one on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.project import project_folder
from support.runs import unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.mark.timeout(900)
def test_the_archive_installs_and_a_yaml_program_runs_on_it(
    tmp_path: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "plugin-archive.sh"), str(tmp_path / "dist")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    archive = Path(built.stdout.strip().splitlines()[-1])
    assert archive.name == f"pulumi-resource-mlflow-runs-v{VERSION}-linux-amd64.tar.gz", archive

    folder = tmp_path / "yaml-native"
    shutil.copytree(ROOT / "examples" / "yaml-native", folder)
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env)  # no virtualenv on PATH
    assert shutil.which("pulumi-resource-mlflow-runs", path=project.env["PATH"]) is None
    project.pulumi("plugin", "install", "resource", "mlflow-runs", VERSION, "--file", str(archive))
    listing = project.pulumi("plugin", "ls").stdout
    assert re.search(rf"^mlflow-runs\s+resource\s+{re.escape(VERSION)}\s", listing, re.M), listing
    project.init({"experimentName": unique("archive")})
    try:
        up = project.pulumi("up", "--yes")  # the first start makes the plugin's virtualenv from its wheels
        assert "from $PATH" not in up.stdout + up.stderr, up.stdout
        run_id = project.outputs()["runId"]
        assert mlflow_client.get_run(run_id).data.params["model"] == "bert-base-uncased"
        project.pulumi("preview", "--expect-no-changes")
        installed = Path(project.env["PULUMI_HOME"]) / "plugins" / f"resource-mlflow-runs-v{VERSION}"
        assert (installed / "venv" / ".complete").exists()
    finally:
        project.remove()

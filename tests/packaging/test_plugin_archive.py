"""The plugin installed as providers are installed: ``pulumi plugin install resource mlflow-runs VERSION --file``
with the archive ``scripts/plugin-archive.sh`` builds, then a YAML program and a TypeScript program (on the
npm package) that use it with no virtualenv of the project anywhere on PATH (the engine must take the
installed plugin, not one on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.once import built_once
from support.project import ProjectFolder, project_folder
from support.runs import unique
from support.sdks import npm_install

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _build_archive(out: Path) -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "scripts" / "plugin-archive.sh"), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive ``scripts/plugin-archive.sh`` builds, once per run however many workers ask."""
    found = built_once(tmp_path_factory, "plugin-archive", _build_archive)
    assert found.name == f"pulumi-resource-mlflow-runs-v{VERSION}-linux-amd64.tar.gz", found
    return found


def installed(project: ProjectFolder, archive: Path) -> None:
    """``pulumi plugin install … --file``, with no virtualenv of the project on PATH."""
    assert shutil.which("pulumi-resource-mlflow-runs", path=project.env["PATH"]) is None
    project.pulumi("plugin", "install", "resource", "mlflow-runs", VERSION, "--file", str(archive))
    listing = project.pulumi("plugin", "ls").stdout
    assert re.search(rf"^mlflow-runs\s+resource\s+{re.escape(VERSION)}\s", listing, re.M), listing


@pytest.mark.timeout(900)
def test_the_archive_installs_and_a_yaml_program_runs_on_it(
    archive: Path, tmp_path: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    folder = tmp_path / "yaml-native"
    shutil.copytree(ROOT / "examples" / "yaml-native", folder)
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env)  # no virtualenv on PATH
    installed(project, archive)
    project.init({"experimentName": unique("archive")})
    try:
        up = project.pulumi("up", "--yes")  # the first start makes the plugin's virtualenv from its wheels
        assert "from $PATH" not in up.stdout + up.stderr, up.stdout
        run_id = project.outputs()["runId"]
        assert mlflow_client.get_run(run_id).data.params["model"] == "bert-base-uncased"
        project.pulumi("preview", "--expect-no-changes")
        plugin_dir = Path(project.env["PULUMI_HOME"]) / "plugins" / f"resource-mlflow-runs-v{VERSION}"
        assert (plugin_dir / "venv" / ".complete").exists()
    finally:
        project.remove()


@pytest.mark.timeout(1200)
def test_a_typescript_program_runs_on_the_installed_archive(
    archive: Path,
    npm_sdk: Path,
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_server: MlflowServer,
    mlflow_client: MlflowClient,
) -> None:
    """The npm package and the archive, as a TypeScript user installs them: nothing else of the project."""
    folder = tmp_path / "typescript-native"
    shutil.copytree(ROOT / "examples" / "typescript-native", folder, ignore=shutil.ignore_patterns("node_modules"))
    npm_install(folder, str(npm_sdk))
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env)  # no virtualenv on PATH
    installed(project, archive)
    project.init({"experimentName": unique("archive-ts")})
    try:
        up = project.pulumi("up", "--yes")
        assert "from $PATH" not in up.stdout + up.stderr, up.stdout
        run_id = project.outputs()["runId"]
        assert mlflow_client.get_run(run_id).data.params["model"] == "bert-base-uncased"
        project.pulumi("preview", "--expect-no-changes")
        project.pulumi("destroy", "--yes")
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    finally:
        project.remove()

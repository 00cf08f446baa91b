"""The plugin archive ``scripts/plugin-archive.sh`` builds: wheels for every Python the package supports, and
installed by hand (``pulumi plugin install resource mlflow-runs VERSION --file``) as well as fetched by the
engine (``test_plugin_fetched.py``), a YAML program runs on it with no virtualenv of the project on PATH (the
engine must take the installed plugin, not one on PATH).

The archives of the other platforms are built the same way by the release workflow, which fails when one of
them lacks a wheel for one of those Pythons (the script installs each as the launcher would, dry run)."""

from __future__ import annotations

import re
import shutil
import tarfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.plugin_archives import PYTHONS, VERSION, host_archive
from support.project import ProjectFolder, project_folder
from support.runs import unique
from support.sdks import ROOT

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return host_archive(tmp_path_factory)


@pytest.mark.cli  # a built package, as the npm package's tests
def test_the_archive_carries_wheels_for_every_supported_python(archive: Path) -> None:
    """Each binary dependency once per Python (from requires-python's minimum on), each pure one once."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        listed = tar.extractfile("./pythons")
        assert listed is not None
        pythons = listed.read().decode().split()
    assert "./pulumi-resource-mlflow-runs" in names
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert pythons == PYTHONS and minimum == f">={pythons[0]}", (pythons, minimum)
    wheels = [Path(n).name for n in names if n.endswith(".whl")]
    assert f"pulumi_mlflow_runs-{VERSION}-py3-none-any.whl" in wheels
    pure = [w.split("-")[0] for w in wheels if w.endswith("-none-any.whl")]
    assert len(pure) == len(set(pure)), pure
    for package in ("grpcio", "pydantic_core", "pyyaml"):
        tags = sorted(w.split("-")[2] for w in wheels if w.startswith(f"{package}-"))
        assert tags == [f"cp{p.replace('.', '')}" for p in pythons], (package, tags)
    # The object-stores extra (s3://, gs://, wasbs:// roots): a fetched plugin has no pip step to add it. Its wheel
    # is abi3, one for every Python from its tag on.
    assert any(w.startswith("obstore-") and "-abi3" in w for w in wheels), wheels


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

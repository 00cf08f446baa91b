"""The plugin fetched by the engine, as for every third-party provider: on a machine with nothing of the
project installed (no virtualenv, no plugin on PATH, an empty Pulumi home), ``pulumi up`` of the TypeScript
example (the npm package's ``pluginDownloadURL``) and of the YAML example (its resources' options) downloads
the archive from the release host, installs it, and runs the plugin from it, with no ``from $PATH`` warning.

The release host is a local HTTP server (``support.plugin_archives``); PATH holds the CLI, node, the system
python3 (which the launcher makes the plugin's virtualenv with) and the commands the launcher runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.ci import unavailable
from support.plugin_archives import PYTHONS, VERSION, host_archive, release_host, system_python_version
from support.project import ProjectFolder
from support.pulumi_cli import PASSPHRASE
from support.runs import unique
from support.sdks import ROOT, npm_install

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

pytestmark = pytest.mark.timeout(1200)
SYSTEM_PYTHON = Path("/usr/bin/python3")
LAUNCHER_COMMANDS = ("sh", "cat", "dirname", "mkdir", "rmdir", "rm", "touch", "sleep", "ls")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return host_archive(tmp_path_factory)


def bare_machine(tmp_path: Path, pulumi_bin: Path, server: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a machine with the CLI, node and a system python3, and nothing of the project."""
    version = system_python_version(SYSTEM_PYTHON)
    if version not in PYTHONS:
        unavailable(f"the system python3 ({SYSTEM_PYTHON}) is {version}, not one of {PYTHONS}", "the fetched plugin's")
    tools = tmp_path / "machine-bin"
    tools.mkdir()
    for name in ("node", *LAUNCHER_COMMANDS):
        found = shutil.which(name, path="/usr/bin:/bin")
        assert found, f"{name} is not in /usr/bin or /bin"
        (tools / name).symlink_to(found)
    (tools / "python3").symlink_to(SYSTEM_PYTHON)
    home = tmp_path / "machine-home"
    (home / ".pulumi").mkdir(parents=True)
    (tmp_path / "machine-state").mkdir()
    env = {
        "PATH": os.pathsep.join([str(pulumi_bin), str(tools)]),
        "HOME": str(home),
        "PULUMI_HOME": str(home / ".pulumi"),
        "PULUMI_BACKEND_URL": (tmp_path / "machine-state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        "MLFLOW_TRACKING_URI": server,
        **extra,
    }
    assert shutil.which("pulumi-resource-mlflow-runs", path=env["PATH"]) is None
    return env


def fetched_and_run(
    folder: Path, archive: Path, tmp_path: Path, pulumi_bin: Path, server: MlflowServer, client: MlflowClient
) -> None:
    """On the bare machine, ``pulumi up`` of the program in ``folder`` downloads the plugin from the release host
    and runs it; the next preview shows no change and destroy removes the run, on the plugin fetched once."""
    fetched = [f"/download/v{VERSION}/{archive.name}"]
    with release_host(archive, tmp_path / "release-host") as host:
        env = bare_machine(tmp_path, pulumi_bin, server.url, host.env)
        project = ProjectFolder(folder, env, unique("stack"))
        try:
            project.init({"experimentName": unique("fetched")})
            up = project.pulumi("up", "--yes")
            assert "from $PATH" not in up.stdout + up.stderr, up.stdout + up.stderr
            assert host.requested == fetched, host.requested
            plugin = Path(env["PULUMI_HOME"]) / "plugins" / f"resource-mlflow-runs-v{VERSION}"
            assert (plugin / "venv" / ".complete").exists(), "the plugin did not run from the fetched archive"
            run_id = project.outputs()["runId"]
            assert client.get_run(run_id).data.params["model"] == "bert-base-uncased"
            project.pulumi("preview", "--expect-no-changes")
        finally:
            project.remove()
        assert host.requested == fetched, "fetched again"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"


def test_a_typescript_program_fetches_the_plugin_its_sdk_names(
    archive: Path,
    npm_sdk: Path,
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_server: MlflowServer,
    mlflow_client: MlflowClient,
) -> None:
    folder = tmp_path / "typescript-native"
    shutil.copytree(ROOT / "examples" / "typescript-native", folder, ignore=shutil.ignore_patterns("node_modules"))
    npm_install(folder, str(npm_sdk))  # as the user's npm install does, before anything else
    fetched_and_run(folder, archive, tmp_path, pulumi_bin, mlflow_server, mlflow_client)


def test_a_yaml_program_fetches_the_plugin_its_options_name(
    archive: Path, tmp_path: Path, pulumi_bin: Path, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    folder = tmp_path / "yaml-native"
    shutil.copytree(ROOT / "examples" / "yaml-native", folder, ignore=shutil.ignore_patterns("Pulumi.*.yaml"))
    fetched_and_run(folder, archive, tmp_path, pulumi_bin, mlflow_server, mlflow_client)

"""Every ``Pulumi.yaml`` in the repository, run from its folder as a user runs it.

``pulumi`` is a process in the project's folder: the CLI starts the Python language host, which runs the
program in the virtualenv ``Pulumi.yaml`` names, and the engine starts the dynamic provider through its
launcher with the project's runtime options (``support.project``). This is the path the inline programs of
the other CLI tests do not take: it is where a ``main:`` beside a relative ``virtualenv`` broke the top-level
project (pulumi/pulumi#7061), so a new project folder is covered the day it is added.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.project import PACKAGE_VENV, project_folder, virtualenv_of
from support.runs import all_runs, unique
from support.sdks import npm_install

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

ROOT = Path(__file__).resolve().parents[2]
_SKIPPED_DIRS = {"node_modules", "__pycache__", "build", "dist", "mutants"}


def project_folders() -> list[Path]:
    """The folders of every Pulumi.yaml in the checkout (hidden folders, venvs and build output left out)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        if "Pulumi.yaml" in files:
            found.append(Path(folder))
    return found


def test_the_repository_has_the_projects_it_documents() -> None:
    """A walk that found nothing would make the lifecycle test below pass vacuously."""
    found = {str(p.relative_to(ROOT)) for p in project_folders()}
    documented = {".", "examples/evaluation-as-data", "examples/yaml-native", "examples/python-native"}
    documented |= {"examples/training-curve", "examples/eval-table", "examples/eval-table-yaml"}
    assert documented | {"examples/typescript-native"} <= found, found


def _runs_in_state(exported: dict[str, Any]) -> dict[str, str]:
    """Resource name (``table/key`` for a table's entry) -> run id of every run in the exported state (either
    front door's ``ExperimentRun`` and ``RunTable`` resources)."""
    out = {}
    for res in exported["deployment"].get("resources") or []:
        kind, name, outputs = str(res.get("type", "")), res["urn"].rsplit("::", 1)[-1], res.get("outputs") or {}
        if kind.endswith(":RunTable"):
            ids = outputs.get("run_ids", outputs.get("runIds")) or {}
            out.update({f"{name}/{key}": run_id for key, run_id in ids.items()})
        elif kind.endswith(":ExperimentRun"):
            run_id = outputs.get("run_id", outputs.get("runId"))
            if isinstance(run_id, str):
                out[name] = run_id
    return out


def _resources(exported: dict[str, Any]) -> int:
    """The stack's resources but the default providers (which a preview does not count as creates)."""
    return sum(
        1
        for r in exported["deployment"].get("resources") or []
        if not str(r.get("type", "")).startswith("pulumi:providers:")
    )


def _runtime(folder: Path) -> str:
    runtime = yaml.safe_load((folder / "Pulumi.yaml").read_text())["runtime"]
    return str(runtime["name"] if isinstance(runtime, dict) else runtime)


def _created(preview: str) -> int:
    match = re.search(r"\+ (\d+) to create", preview)
    assert match, preview
    return int(match.group(1))


@pytest.mark.parametrize("folder", project_folders(), ids=lambda p: str(p.relative_to(ROOT)) or ".")
def test_project_folder_lifecycle(
    folder: Path,
    pulumi_bin: Path,
    mlflow_server: MlflowServer,
    mlflow_client: MlflowClient,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    venv = virtualenv_of(folder)
    assert venv is None or (venv / "bin" / "python").exists(), f"{folder}/Pulumi.yaml names {venv}, which is no venv"
    experiment = unique("project")
    if _runtime(folder) == "nodejs":  # its packages, as its user installs them (the SDK's from this checkout)
        npm_install(folder, "--no-save", "--no-package-lock", str(request.getfixturevalue("npm_sdk")))
    # A program that names no virtualenv (YAML, Node.js) gets the plugin from the virtualenv pip installed it in.
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url}
    project = project_folder(folder, pulumi_bin, tmp_path, unique("stack"), env, venv=PACKAGE_VENV)
    try:
        project.init({"experimentName": experiment})

        preview = project.pulumi("preview", "--diff").stdout
        assert mlflow_client.get_experiment_by_name(experiment) is None, "a preview created the experiment"

        up = project.pulumi("up", "--yes", "--skip-preview").stdout
        outputs = project.outputs()
        experiment_id = outputs.get("experiment_id", outputs.get("experimentId"))
        in_state = _runs_in_state(project.exported())
        assert in_state, up
        active = {
            rid for rid, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"
        }
        assert set(in_state.values()) == active
        # Every resource the preview announced was created: the stack, the experiment, each run or table.
        assert _created(preview) == _resources(project.exported()), preview

        # No change from the same folder: the program, the provider and the state agree.
        project.pulumi("preview", "--diff", "--expect-no-changes")
        project.pulumi("refresh", "--yes", "--expect-no-changes")
        project.pulumi("preview", "--expect-no-changes")

        project.pulumi("destroy", "--yes")
        stages = {r.info.lifecycle_stage for r in all_runs(mlflow_client, experiment_id).values()}
        assert stages == {"deleted"}
    finally:
        project.remove()
    assert not (folder / f"Pulumi.{project.stack}.yaml").exists()


def test_the_top_level_project_keeps_its_program_beside_pulumi_yaml() -> None:
    """The layout that pulumi/pulumi#7061 needs: no ``main:`` next to a relative ``virtualenv``.

    The engine starts the dynamic-provider launcher in the folder ``main:`` names and hands it the raw
    ``virtualenv``, while the language host resolves it against the folder of Pulumi.yaml: with both, the
    first resource fails. The lifecycle test shows it; this one names the rule for every project here.
    """
    for folder in project_folders():
        spec = yaml.safe_load((folder / "Pulumi.yaml").read_text())
        venv = virtualenv_of(folder)
        if venv is not None and not Path(spec["runtime"]["options"]["virtualenv"]).is_absolute():
            assert "main" not in spec, f"{folder}/Pulumi.yaml: main: with a relative virtualenv (pulumi/pulumi#7061)"


@pytest.mark.timeout(600)
def test_the_quickstart_is_pulumi_up_in_the_top_level_folder(pulumi_bin: Path, tmp_path: Path) -> None:
    """The README's first command: its own server and state, the real `pulumi` in the repository root."""
    stack = unique("quickstart")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PULUMI_"))}

    def quickstart(*args: str) -> str:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "quickstart.sh"), "--local", str(tmp_path), "--stack", stack, *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, f"quickstart {args}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    try:
        first = quickstart()
        assert f"{ROOT.name}$ pulumi up --yes" in first, first  # the command a user types, where they type it
        assert "+ 4 created" in first and 'train_run_id        : "' in first, first
        assert "warning" not in first.lower(), first  # a newcomer's first run is clean
        assert "4 unchanged" in quickstart()
        assert "- 4 deleted" in quickstart("--destroy")
    finally:
        (ROOT / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)

"""What a release ships: one version everywhere, and what ``.github/workflows/release.yml`` builds, built and
installed here the way its users install it.

The npm package goes into a clean Node project (``test_typescript.py``, ``test_plugin_fetched.py``),
the Go SDK into a program as a module replaced to its folder (``test_go.py``), the plugin archive fetched
by the engine onto a machine with nothing else of the project (``test_plugin_fetched.py``, and installed by
hand in ``test_plugin_archive.py``); the wheel and sdist here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from support.sdks import ROOT, run_step

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def test_one_version_everywhere() -> None:
    """pyproject.toml's version is the installed package's, the plugin's (GetPluginInfo and its schema), every
    generated SDK's, and the CHANGELOG's newest release."""
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import provider_pb2

    from pulumi_mlflow_runs.native.provider import Provider
    from pulumi_mlflow_runs.version import VERSION as INSTALLED

    plugin = Provider()
    served = json.loads(plugin.GetSchema(provider_pb2.GetSchemaRequest(), None).schema)  # type: ignore[arg-type]
    npm = json.loads((ROOT / "sdk" / "nodejs" / "package.json").read_text())
    go_plugin = json.loads((ROOT / "sdk" / "go" / "mlflowruns" / "pulumi-plugin.json").read_text())
    python_sdk = ROOT / "sdk" / "python"
    python_plugin = json.loads((python_sdk / "pulumi_mlflow_runs_native" / "pulumi-plugin.json").read_text())
    python_setup = re.search(r'^VERSION = "(.+)"$', (python_sdk / "setup.py").read_text(), re.M)
    versions = {
        "installed package": INSTALLED,
        "GetPluginInfo": plugin.GetPluginInfo(empty_pb2.Empty(), None).version,  # type: ignore[arg-type]
        "served schema": served["version"],
        "sdk/schema.json": json.loads((ROOT / "sdk" / "schema.json").read_text())["version"],
        "npm package": npm["version"],
        "npm package's plugin": npm["pulumi"]["version"],
        "Go SDK's plugin": go_plugin["version"],
        "Python SDK": python_setup.group(1) if python_setup else None,
        "Python SDK's plugin": python_plugin["version"],
    }
    assert versions == dict.fromkeys(versions, VERSION), versions
    released = re.findall(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert released and released[0] == VERSION, released


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_sdist_and_the_wheel_install_into_a_clean_virtualenv(tmp_path: Path) -> None:
    """As the workflow builds them (``python -m build``); the sdist must hold everything the wheel does. The
    generated Python SDK's (``sdk/python``, built from a copy: setuptools leaves its scratch in the source)
    installs beside the package and imports, with the one version."""
    dist = tmp_path / "dist"
    # From elsewhere: the checkout's own build/ folder (setuptools' scratch) would shadow the `build` package.
    run_step([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(ROOT)], tmp_path)
    sdk = tmp_path / "sdk"
    shutil.copytree(ROOT / "sdk" / "python", sdk, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    run_step([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(dist), str(sdk)], tmp_path)
    (sdist,) = dist.glob(f"pulumi_mlflow_runs-{VERSION}.tar.gz")
    (wheel,) = dist.glob(f"pulumi_mlflow_runs-{VERSION}-py3-none-any.whl")
    sdk_dists = {".gz": dist / f"pulumi_mlflow_runs_native-{VERSION}.tar.gz",
                 ".whl": dist / f"pulumi_mlflow_runs_native-{VERSION}-py3-none-any.whl"}  # fmt: skip
    for built in (sdist, wheel):
        venv = tmp_path / f"venv-{built.suffix}"
        run_step([sys.executable, "-m", "venv", str(venv)], tmp_path)
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        run_step([*pip, str(built), str(sdk_dists[built.suffix])], tmp_path)
        sdk_probe = "import pulumi_mlflow_runs_native as n; print(n._utilities.get_version(), n.ExperimentRun.__name__)"
        said = run_step([str(venv / "bin" / "python"), "-c", sdk_probe], tmp_path)
        assert said.split() == [VERSION, "ExperimentRun"], (sdk_dists[built.suffix].name, said)
        probe = (
            "import importlib.resources as r, pulumi_mlflow_runs as p\n"
            "from pulumi_mlflow_runs.version import VERSION\n"
            "print(VERSION, r.files(p).joinpath('pulumi-plugin.json').read_text().replace(chr(10), ''))"
        )
        said = run_step([str(venv / "bin" / "python"), "-c", probe], tmp_path)
        assert said.split()[0] == VERSION and '"resource": false' in said, (built.name, said)
        assert (venv / "bin" / "pulumi-resource-mlflow-runs").exists(), f"{built.name}: no plugin entry point"


def test_the_workflow_builds_with_the_tested_scripts_and_publishes_without_tokens() -> None:
    """Each artifact is built by the script the tests build it with, and published by trusted publishing:
    an OIDC token per job, no long-lived registry token in the repository's secrets."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = "\n".join(str(s.get("run", "")) for s in workflow["jobs"]["build"]["steps"])
    for command in ("scripts/gen-sdk.sh --check", "python -m build --sdist --wheel", "scripts/plugin-archive.sh",
                    "scripts/sdk-nodejs.sh", "go build ./... && go vet ./...",
                    "python -m build --sdist --wheel --outdir dist/python sdk/python"):  # fmt: skip
        assert command in steps, f"the build job does not run {command!r}"
    for job in ("pypi", "npm"):
        assert workflow["jobs"][job]["permissions"] == {"id-token": "write"}, job
    assert "secrets." not in WORKFLOW.read_text().replace("secrets.GITHUB_TOKEN", "")
    assert workflow[True]["push"]["tags"] == ["v*.*.*"]  # YAML 1.1 reads the key `on` as True


def test_the_release_notes_command_takes_the_versions_entry(tmp_path: Path) -> None:
    """The workflow's awk line cuts the CHANGELOG entry of the version out as the release notes."""
    (step,) = [s["run"] for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["github"]["steps"]
               if "awk" in str(s.get("run", ""))]  # fmt: skip
    awk = next(line.strip() for line in step.splitlines() if line.strip().startswith("awk"))
    script = f"version={VERSION}\n" + awk.replace("CHANGELOG.md", str(ROOT / "CHANGELOG.md")).replace(
        "notes.md", str(tmp_path / "notes.md")
    )
    subprocess.run(["bash", "-c", script], check=True, timeout=30)
    notes = (tmp_path / "notes.md").read_text()
    assert "The first release." in notes and "## [" not in notes, notes

"""Where the engine fetches the plugin: the schema's ``pluginDownloadURL``, carried by every generated SDK and
named by the YAML example and the README's YAML program, is the GitHub releases of the schema's repository,
where ``.github/workflows/release.yml`` uploads the archives (``test_plugin_fetched.py`` fetches them)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import yaml

from pulumi_mlflow_runs.native.schema import PLUGIN_DOWNLOAD_URL, REPOSITORY, schema

from support.plugin_archives import VERSION
from support.sdks import ROOT

SDK = ROOT / "sdk"
PYTHON_SDK = SDK / "python" / "pulumi_mlflow_runs_native"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def test_the_url_is_the_releases_of_the_repository_the_workflow_publishes_to() -> None:
    """The release workflow uploads the archives to the release of the repository it runs in, and fails when
    that is not the repository the SDKs name; here it runs as it would in the schema's repository and another."""
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    assert f"github://api.github.com/{owner_repo}" == PLUGIN_DOWNLOAD_URL
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]["steps"]
    (check,) = [s["run"] for s in steps if "pluginDownloadURL" in str(s.get("run", ""))]
    for repository, ok in ((owner_repo, True), ("someone/fork", False)):
        env = {**os.environ, "GITHUB_REPOSITORY": repository}
        done = subprocess.run(
            ["bash", "-e", "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60
        )
        assert (done.returncode == 0) is ok, (repository, done.stdout, done.stderr)
    assert "gh release create" in WORKFLOW.read_text() and "dist/plugin/*.tar.gz" in WORKFLOW.read_text()


def test_the_schema_and_every_sdk_name_it() -> None:
    quoted = json.dumps(PLUGIN_DOWNLOAD_URL)
    named = {
        "served schema": schema()["pluginDownloadURL"],
        "sdk/schema.json": json.loads((SDK / "schema.json").read_text())["pluginDownloadURL"],
        "npm package": json.loads((SDK / "nodejs" / "package.json").read_text())["pulumi"]["server"],
        "Go SDK's plugin": json.loads((SDK / "go" / "mlflowruns" / "pulumi-plugin.json").read_text())["server"],
        "Python SDK's plugin": json.loads((PYTHON_SDK / "pulumi-plugin.json").read_text())["server"],
    }
    assert named == dict.fromkeys(named, PLUGIN_DOWNLOAD_URL), named
    # The resource options each SDK gives its resources and invokes by default.
    assert f"pluginDownloadURL: {quoted}" in (SDK / "nodejs" / "utilities.ts").read_text()
    go_defaults = (SDK / "go" / "mlflowruns" / "internal" / "pulumiUtilities.go").read_text()
    assert go_defaults.count(f"pulumi.PluginDownloadURL({quoted})") == 2, "resources and invokes"
    assert f"return {quoted}" in (PYTHON_SDK / "_utilities.py").read_text()  # get_plugin_download_url()


def test_the_yaml_programs_name_it_with_the_version_on_every_resource() -> None:
    readme = re.search(r"<!-- language: Pulumi.yaml -->\n```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert readme, "the README's YAML program"
    programs = {
        "examples/yaml-native": yaml.safe_load((ROOT / "examples" / "yaml-native" / "Pulumi.yaml").read_text()),
        "README": yaml.safe_load(readme[1]),
    }
    for where, program in programs.items():
        for name, resource in program["resources"].items():
            options = resource.get("options", {})
            assert options.get("pluginDownloadURL") == PLUGIN_DOWNLOAD_URL, (where, name)
            assert str(options.get("version")) == VERSION, (where, name)

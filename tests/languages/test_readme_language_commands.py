"""The README's "Every language: what you type", typed as a user follows it, one language per test.

Each runs in a new folder outside the repository, in a shell with nothing of this checkout in it (its own
HOME, no virtualenv active, the CLI and its language hosts on PATH), with the README's commands and files
taken from the README itself. What stands in for what the test cannot do, and nothing else: the packages
built from this checkout for the registries' (the npm package for npm's, the Go SDK's folder for the module
proxy's), a local server for the release host the engine fetches the plugin from (``support.plugin_archives``:
the archive built from this checkout, the engine sent there for the SDKs' URL alone), the test server's
address for `http://127.0.0.1:5000`, a state folder of the test's for `pulumi login --local`, the passphrase
in ``PULUMI_CONFIG_PASSPHRASE`` for the prompt, and a unique experiment name for the README's (the test server
is shared). The Python block is typed by ``test_readme_own_project.py``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.plugin_archives import ReleaseHost, host_archive, release_host
from support.project import typist_shell
from support.runs import unique
from support.sdks import ROOT, require

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

README = ROOT / "README.md"
_BLOCK = re.compile(r"<!-- language: (?P<name>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)```\n", re.DOTALL)
GO_SDK = "github.com/pulumi-mlflow-runs/pulumi-mlflow-runs/sdk"
pytestmark = pytest.mark.timeout(1500)


def blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in _BLOCK.finditer(README.read_text())}


def substitute(script: str, old: str, new: str) -> str:
    assert old in script, f"the README no longer says {old!r}; update this test's stand-ins with it"
    return script.replace(old, new)


@pytest.fixture
def release(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[ReleaseHost]:
    with release_host(host_archive(tmp_path_factory), tmp_path / "release-host") as host:
        yield host


def typed(
    script: str, tmp_path: Path, pulumi_bin: Path, release: ReleaseHost, server: str
) -> subprocess.CompletedProcess[str]:
    """``script`` as the user types it in a new shell, with the stand-ins every language shares."""
    assert "pip install" not in script, "the plugin is fetched by the engine"
    script = script.replace("http://127.0.0.1:5000", server)
    script = script.replace("pulumi login --local", f"pulumi login {(tmp_path / 'state').as_uri()}")
    env, home = typist_shell(pulumi_bin, tmp_path)
    env.update(release.env)
    env["GOFLAGS"] = "-trimpath -buildvcs=false"  # Go's build cache of the CLI's build serves the SDK's packages
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"the README's commands failed:\n{done.stdout}\n{done.stderr}"
    assert "from $PATH" not in done.stdout + done.stderr, done.stdout
    assert release.requested, "the plugin did not come from the release host"
    return done


def the_only_run(client: MlflowClient, experiment_name: str) -> Run:
    """The one run the README's program made, in the experiment it was told to name."""
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no experiment {experiment_name!r}"
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def test_the_readme_has_a_block_for_every_language() -> None:
    assert set(blocks()) == {"typescript", "index.ts", "go", "yaml", "Pulumi.yaml"}, set(blocks())


def test_typescript_as_the_readme_says(
    tmp_path: Path,
    pulumi_bin: Path,
    release: ReleaseHost,
    npm_sdk: Path,
    mlflow_server: MlflowServer,
    mlflow_client: MlflowClient,
) -> None:
    found = blocks()
    files = tmp_path / "typed-files"
    files.mkdir()
    name = unique("ts")
    (files / "index.ts").write_text(substitute(found["index.ts"], '"ts-evaluations"', f'"{name}"'))
    script = substitute(found["typescript"], "npm install @pulumi/pulumi @pulumi-mlflow-runs/mlflow-runs",
                        f"npm install @pulumi/pulumi {npm_sdk}")  # fmt: skip
    script = substitute(script, "# write index.ts as below, then:", f"cp {files}/index.ts .")
    done = typed(script, tmp_path, pulumi_bin, release, mlflow_server.url)
    assert "+ 3 created" in done.stdout, done.stdout
    run = the_only_run(mlflow_client, name)
    assert run.data.params == {"model": "bert-base-uncased", "batch_size": "32"}


@pytest.mark.xdist_group("go")  # one worker builds Go in turn: the others reuse its build cache
def test_go_as_the_readme_says(
    tmp_path: Path, pulumi_bin: Path, release: ReleaseHost, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    require("go")
    script = substitute(blocks()["go"], f"go get {GO_SDK}@v0.1.0",
                        f"go mod edit -require={GO_SDK}@v0.1.0 -replace={GO_SDK}={ROOT / 'sdk'}")  # fmt: skip
    script = substitute(script, "# write main.go as examples/go-automation/main.go, then:",
                        f"cp {ROOT / 'examples' / 'go-automation' / 'main.go'} .")  # fmt: skip
    script = substitute(script, "file://$HOME/.pulumi-state", (tmp_path / "state").as_uri())
    name = unique("go")
    script = substitute(script, "experimentName=go-evaluations", f"experimentName={name}")
    done = typed(script, tmp_path, pulumi_bin, release, mlflow_server.url)
    assert "+ 3 to create" in done.stdout and "+ 3 created" in done.stdout, done.stdout
    run = the_only_run(mlflow_client, name)
    assert run.data.params["batch_size"] == "32" and run.data.tags["reviewed_by"] == "alice"


def test_yaml_as_the_readme_says(
    tmp_path: Path, pulumi_bin: Path, release: ReleaseHost, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    found = blocks()
    files = tmp_path / "typed-files"
    files.mkdir()
    name = unique("yaml")
    (files / "Pulumi.yaml").write_text(substitute(found["Pulumi.yaml"], "name: yaml-evaluations", f"name: {name}"))
    script = substitute(found["yaml"], "# write Pulumi.yaml as the YAML program above, then:",
                        f"cp {files}/Pulumi.yaml .")  # fmt: skip
    done = typed(script, tmp_path, pulumi_bin, release, mlflow_server.url)
    assert "+ 3 created" in done.stdout, done.stdout
    run = the_only_run(mlflow_client, name)
    assert [m.value for m in mlflow_client.get_metric_history(run.info.run_id, "loss")] == [0.92, 0.61]

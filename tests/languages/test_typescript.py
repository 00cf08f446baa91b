"""A TypeScript program on the generated Node.js SDK, under the real CLI from its project folder.

``examples/typescript-native`` (a copy) gets ``npm install`` of the SDK's npm package as
``scripts/sdk-nodejs.sh`` packs it for the registry, and of ``@pulumi/pulumi`` from the npm registry; the
Node.js language host (scripts/language-host.sh) runs it, and the engine runs its resources on the plugin,
found on PATH with the virtualenv pip installed it into activated. Edits are made to the program's text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.mlflow_proxy import RecordingProxy
from support.native_examples import assert_drift_put_back, assert_example_run, example_stack
from support.project import ProjectFolder
from support.sdks import npm_install

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture
def project(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, npm_sdk: Path) -> Iterator[ProjectFolder]:
    found = example_stack("typescript-native", tmp_path, pulumi_bin, proxy.url)
    npm_install(found.folder, str(npm_sdk))  # the example's @pulumi/pulumi too, from the registry
    try:
        yield found
    finally:
        found.remove()


def edit(project: ProjectFolder, old: str, new: str) -> None:
    program = project.folder / "index.ts"
    text = program.read_text()
    assert text.count(old) == 1, f"{old!r} is not in the program exactly once"
    program.write_text(text.replace(old, new))


def test_typescript_program_lifecycle(
    project: ProjectFolder, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    mark = proxy.mark()
    preview = project.pulumi("preview", "--diff")
    assert "+ 3 to create" in preview.stdout, preview.stdout
    assert "runName" in preview.stdout and '"bert-sst2"' in preview.stdout, preview.stdout
    assert not [r for r in proxy.since(mark) if r.is_write], "a preview wrote to the server"

    project.pulumi("up", "--yes", "--skip-preview")
    run_id = project.outputs()["runId"]
    assert_example_run(mlflow_client, run_id)
    assert project.outputs()["latestMetrics"] == {"loss": 0.44, "accuracy": 0.924}
    project.pulumi("preview", "--diff", "--expect-no-changes")

    # One appended point: the preview names it alone, and the update logs only it.
    edit(project, '{ key: "accuracy", value: 0.924, step: 2 },',
         '{ key: "accuracy", value: 0.924, step: 2 },\n        { key: "loss", value: 0.35, step: 3 },')  # fmt: skip
    preview = project.pulumi("preview", "--diff").stdout
    assert "~ 1 to update" in preview and re.search(r"~ metrics\s*: \[\n\s*\+ \[4\]: \{", preview), preview
    mark = proxy.mark()
    project.pulumi("up", "--yes", "--skip-preview")
    writes = [r for r in proxy.since(mark) if r.is_write]
    assert [r.endpoint for r in writes] == ["runs/log-batch"] and len(writes[0].body["metrics"]) == 1, writes

    assert_drift_put_back(project, mlflow_client, run_id)

    # A changed param is a replace, and the preview says why; a secret param stays out of the state.
    edit(project, 'batch_size: "32" }', 'batch_size: "64", api_key: pulumi.secret("s3cr3t-param-value") }')
    preview = project.pulumi("preview", "--diff").stdout
    assert "+-1 to replace" in preview and re.search(r'batch_size\s*: "32" => "64"', preview), preview
    project.pulumi("up", "--yes", "--skip-preview")
    new_id = project.outputs()["runId"]
    assert new_id != run_id and mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert mlflow_client.get_run(new_id).data.params["api_key"] == "s3cr3t-param-value"
    state = project.pulumi("stack", "export").stdout
    assert "s3cr3t-param-value" not in state
    resource = next(r for r in json.loads(state)["deployment"]["resources"] if r["urn"].endswith("::bertSst2"))
    assert "ciphertext" in json.dumps(resource["outputs"]["params"])

    project.pulumi("destroy", "--yes")
    assert mlflow_client.get_run(new_id).info.lifecycle_stage == "deleted"

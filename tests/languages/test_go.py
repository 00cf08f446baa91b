"""A Go program on the generated Go SDK, through the Go Automation API and the real CLI.

No Go language host is served here, so ``pulumi up`` in a Go project folder cannot run; the Automation API
runs an inline program with no language host at all, through the same CLI and engine. ``examples/
go-automation`` is such a program: built here with the SDK module replaced to ``sdk/`` (its go.mod), then
driven through the lifecycle as a user would drive it, its config changed between runs for the edits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.mlflow_proxy import RecordingProxy
from support.project import PACKAGE_VENV, activated, user_env
from support.runs import unique
from support.sdks import ROOT, require, run_step

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# One worker builds Go in turn (xdist_group, .ci/run's --dist loadgroup): the others reuse its build cache.
pytestmark = [pytest.mark.timeout(1200), pytest.mark.xdist_group("go")]
PROJECT = "mlflow-runs-go"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example, built as its user builds it (`go build`)."""
    go = require("go")
    built = tmp_path_factory.mktemp("go") / "go-automation"
    env = {**os.environ, "GOFLAGS": "-trimpath -buildvcs=false -mod=readonly"}
    run_step([go, "build", "-o", str(built), "."], ROOT / "examples" / "go-automation", env=env)
    return built


def test_go_program_lifecycle(
    program: Path, tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    env = activated(user_env(pulumi_bin, tmp_path, {"MLFLOW_TRACKING_URI": proxy.url}), PACKAGE_VENV)
    stack = unique("stack")

    def go(command: str, *settings: str) -> str:
        return run_step([str(program), stack, command, *settings], tmp_path, timeout=600, env=env)

    def outputs() -> dict[str, object]:
        return dict(json.loads(go("outputs")))

    mark = proxy.mark()
    preview = go("preview", f"experimentName={unique('go')}")
    assert "+ 3 to create" in preview and '"bert-sst2"' in preview, preview
    assert not [r for r in proxy.since(mark) if r.is_write], "a preview wrote to the server"

    go("up")
    run_id = str(outputs()["runId"])
    held = mlflow_client.get_run(run_id)
    assert held.data.params == {"model": "bert-base-uncased", "batch_size": "32", "api_key": "s3cr3t-param-value"}
    assert [m.value for m in mlflow_client.get_metric_history(run_id, "loss")] == [0.92, 0.61, 0.44]
    assert held.data.tags["reviewed_by"] == "alice" and held.info.status == "FINISHED"
    assert outputs()["latestMetrics"] == {"loss": 0.44, "accuracy": 0.924}
    go("no-change")

    # One appended point: the preview names it alone, and the update logs only it.
    preview = go("preview", "extraLoss=0.35")
    assert "~ 1 to update" in preview and re.search(r"~ metrics\s*: \[\n\s*\+ \[4\]: \{", preview), preview
    mark = proxy.mark()
    go("up")
    writes = [r for r in proxy.since(mark) if r.is_write]
    assert [r.endpoint for r in writes] == ["runs/log-batch"] and len(writes[0].body["metrics"]) == 1, writes

    # A colleague edits a managed tag: refresh names the drift, and the next up puts it back.
    mlflow_client.set_tag(run_id, "reviewed_by", "mallory")
    assert "mallory" in go("refresh")
    assert re.search(r'reviewed_by\s*: "mallory" => "alice"', go("preview")), "the drift is not in the preview"
    go("up")
    assert mlflow_client.get_run(run_id).data.tags["reviewed_by"] == "alice"

    # A changed param is a replace, and the preview says why.
    preview = go("preview", "batchSize=64")
    assert "+-1 to replace" in preview and re.search(r'batch_size\s*: "32" => "64"', preview), preview
    go("up")
    new_id = str(outputs()["runId"])
    assert new_id != run_id and mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"

    # The secret param is in the state only encrypted (the CLI's own export; the Automation API's shows secrets).
    exported = subprocess.run(
        [str(pulumi_bin / "pulumi"), "stack", "export", "--stack", f"organization/{PROJECT}/{stack}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert "s3cr3t-param-value" not in exported
    resource = next(r for r in json.loads(exported)["deployment"]["resources"] if r["urn"].endswith("::bertSst2"))
    assert "ciphertext" in json.dumps(resource["outputs"]["params"])

    go("destroy")
    assert mlflow_client.get_run(new_id).info.lifecycle_stage == "deleted"

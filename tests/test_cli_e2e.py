"""The quickstart through the real Pulumi CLI (Automation API): preview, up, up, drift, refresh, up, destroy.

Skipped when the ``pulumi`` CLI is not on PATH. The stack lives in a local file backend in a temp dir with
the passphrase secrets provider, so nothing outside the temp dir and the test's MLflow server is touched.
The program is a copy of examples/quickstart (the workspace writes its Pulumi.yaml next to it).
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
INSTALL_HINT = (
    "pulumi CLI not on PATH: install it (`curl -fsSL https://get.pulumi.com | sh`, then add ~/.pulumi/bin to "
    "PATH; in GitHub Actions use pulumi/actions or pulumi/setup-pulumi) to run the real-CLI end-to-end test"
)

pytestmark = pytest.mark.skipif(shutil.which("pulumi") is None, reason=INSTALL_HINT)


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """``{op: count}`` with plain string keys (the Automation API may key them by ``OpType``)."""
    return {str(getattr(op, "value", op)): n for op, n in (summary or {}).items() if n}


def _python_runtime() -> tuple[dict[str, str], dict[str, str]]:
    """Runtime options and env so the language host and the dynamic provider host use this interpreter."""
    env = {"PULUMI_PYTHON_CMD": sys.executable}
    options = {"toolchain": "pip"}
    if sys.prefix != sys.base_prefix:  # a virtualenv: let Pulumi use it for the program and the provider
        options["virtualenv"] = sys.prefix
        env["PULUMI_RUNTIME_VIRTUALENV"] = sys.prefix
    return options, env


def test_quickstart_lifecycle_through_the_pulumi_cli(
    tmp_path: Path, mlflow_env: str, mlflow_client: MlflowClient
) -> None:
    from mlflow.entities import ViewType
    from pulumi import automation as auto

    work_dir = tmp_path / "quickstart"
    work_dir.mkdir()
    shutil.copy(QUICKSTART / "__main__.py", work_dir / "__main__.py")
    backend = tmp_path / "backend"
    backend.mkdir()
    options, runtime_env = _python_runtime()
    env = {
        **runtime_env,
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "not-a-secret-test-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "MLFLOW_TRACKING_URI": mlflow_env,
    }
    project = auto.ProjectSettings(name="quickstart-e2e", runtime=auto.ProjectRuntimeInfo("python", options))
    stack = auto.create_or_select_stack(
        stack_name="e2e",
        work_dir=str(work_dir),
        opts=auto.LocalWorkspaceOptions(
            project_settings=project,
            env_vars=env,
            secrets_provider="passphrase",
            pulumi_home=str(tmp_path / "pulumi-home"),
        ),
    )
    name = f"cli-e2e-{uuid.uuid4().hex[:10]}"
    stack.set_config("experimentName", auto.ConfigValue(value=name))
    try:
        # preview of a fresh stack: three creates (plus the Stack), nothing on the server
        preview = stack.preview(diff=True)
        assert _changes(preview.change_summary) == {"create": 4}, preview.stdout
        assert mlflow_client.get_experiment_by_name(name) is None

        up = stack.up()
        assert _changes(up.summary.resource_changes) == {"create": 4}, up.stdout
        out = {key: value.value for key, value in up.outputs.items()}
        experiment_id = out["experiment_id"]
        assert mlflow_client.get_experiment(experiment_id).name == name
        train = mlflow_client.get_run(out["train_run_id"])
        assert train.data.params == {"model": "resnet18", "learning_rate": "0.001", "epochs": "6"}
        assert out["train_latest_metrics"] == {"loss": 0.27, "accuracy": 0.9}
        assert out["train_artifact_uri"] == train.info.artifact_uri
        assert mlflow_client.get_run(out["warmup_run_id"]).info.status == "RUNNING"

        # the unchanged program: no change at all
        again = stack.up()
        assert _changes(again.summary.resource_changes) == {"same": 4}, again.stdout
        stack.preview(expect_no_changes=True)

        # drift made with MlflowClient shows in refresh and in state; the next up heals it
        mlflow_client.set_tag(out["train_run_id"], "team", "drifted")
        mlflow_client.delete_run(out["warmup_run_id"])
        refresh = stack.refresh()
        refreshed = _changes(refresh.summary.resource_changes)
        assert sum(n for op, n in refreshed.items() if op != "same") == 2, refresh.stdout
        state = {r["urn"].rsplit("::", 1)[-1]: r for r in stack.export_stack().deployment["resources"]}
        assert state["warmup"]["outputs"]["lifecycle_stage"] == "deleted"
        assert state["train"]["outputs"]["tags"]["team"] == "drifted"
        heal = stack.up()
        assert _changes(heal.summary.resource_changes) == {"update": 2, "same": 2}, heal.stdout
        assert mlflow_client.get_run(out["warmup_run_id"]).info.lifecycle_stage == "active"
        assert mlflow_client.get_run(out["train_run_id"]).data.tags["team"] == "vision"

        destroy = stack.destroy()
        assert _changes(destroy.summary.resource_changes) == {"delete": 4}, destroy.stdout
        runs = mlflow_client.search_runs([experiment_id], run_view_type=ViewType.ALL)
        assert {r.info.run_id: r.info.lifecycle_stage for r in runs} == {
            out["train_run_id"]: "deleted",
            out["warmup_run_id"]: "deleted",
        }
        assert mlflow_client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    finally:
        stack.destroy()  # a no-op after a passing run; cleans up after a failing one
        stack.workspace.remove_stack("e2e")

"""A run gone for good, through the real Pulumi CLI: what README.md and docs/reference.md promise.

"A run that is gone for good drops out of the state, and the next ``up`` creates it again." Gone for good
means what an MLflow administrator does: the run is deleted, then removed from the server's store by
``mlflow gc`` (``support.purge``), so that ``runs/get`` answers RESOURCE_DOES_NOT_EXIST. The provider host
talks to the test server through a recording proxy, so "refresh only reads" and "the next up creates that
run and touches nothing else" are checked on the wire; the server's own view with MlflowClient.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pulumi

from pulumi_mlflow_runs import ExperimentRun

from support.mlflow_proxy import RecordingProxy
from support.pulumi_cli import changes, new_stack, run_with_ops, state_resources
from support.purge import purge_run
from support.runs import endpoints, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

PARAMS = {"lr": "0.1", "layers": "4"}
TAGS = {"team": "ml"}
POINTS = [(0, 0.5), (1, 0.25)]


def _program(experiment_id: str):
    def program() -> None:
        for name in ("kept", "lost"):
            run = ExperimentRun(
                name,
                experiment_id=experiment_id,
                run_name=name,
                status="FINISHED",
                params=PARAMS,
                tags=TAGS,
                metrics=[{"key": "loss", "value": value, "step": step} for step, value in POINTS],
            )
            pulumi.export(f"{name}_run_id", run.run_id)

    return program


def _assert_as_declared(client: MlflowClient, run_id: str, name: str) -> None:
    run = client.get_run(run_id)
    assert (run.info.run_name, run.info.lifecycle_stage, run.info.status) == (name, "active", "FINISHED")
    assert run.data.params == PARAMS
    assert {k: v for k, v in run.data.tags.items() if k in TAGS} == TAGS
    assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss")) == POINTS


def test_a_run_gone_for_good_leaves_state_at_refresh_and_the_next_up_creates_it_again(
    tmp_path: Path,
    pulumi_bin: Path,
    mlflow_env: str,
    mlflow_server: MlflowServer,
    proxy: RecordingProxy,
    mlflow_client: MlflowClient,
) -> None:
    experiment_id = mlflow_client.create_experiment(unique("cli-gone"))
    stack = new_stack(pulumi_bin, tmp_path, _program(experiment_id), {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 3}, up.stdout
        kept, lost = up.outputs["kept_run_id"].value, up.outputs["lost_run_id"].value
        purge_run(mlflow_server, mlflow_client, lost)

        # refresh: the run that is gone drops out of the state; nothing is written
        mark = proxy.mark()
        refresh = stack.refresh()
        assert changes(refresh.summary.resource_changes) == {"delete": 1, "same": 2}, refresh.stdout
        assert proxy.writes_since(mark) == [], "refresh only reads"
        state = state_resources(stack)
        assert "lost" not in state and state["kept"]["id"] == kept

        # the next preview shows it as a create, and sends nothing
        mark = proxy.mark()
        preview, ops = run_with_ops(stack.preview)
        assert ops == {"kept": "same", "lost": "create"}, preview.stdout
        assert proxy.since(mark) == []

        # the next up creates it again: a new run, as declared; the other run is left alone
        mark = proxy.mark()
        again, ops = run_with_ops(stack.up)
        assert ops == {"kept": "same", "lost": "create"}, again.stdout
        created = again.outputs["lost_run_id"].value
        assert created not in (lost, kept) and again.outputs["kept_run_id"].value == kept
        writes = proxy.writes_since(mark)
        assert endpoints(writes).count("runs/create") == 1
        assert {w.run_id for w in writes if w.endpoint != "runs/create"} == {created}, "only the new run is written"
        assert state_resources(stack)["lost"]["id"] == created
        _assert_as_declared(mlflow_client, created, "lost")
        _assert_as_declared(mlflow_client, kept, "kept")
        stack.preview(expect_no_changes=True)

        # `up --refresh` does both in one go
        purge_run(mlflow_server, mlflow_client, created)
        healed = stack.up(refresh=True)
        assert changes(healed.summary.resource_changes).get("create") == 1, healed.stdout
        third = healed.outputs["lost_run_id"].value
        assert third not in (lost, created, kept)
        _assert_as_declared(mlflow_client, third, "lost")
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()
        stack.workspace.remove_stack("test")

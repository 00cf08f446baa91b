"""Refresh and the resource options users reach for, through the real Pulumi CLI.

Refresh: the engine decides drift by calling Diff with the refreshed outputs as olds and the stored
inputs as news, and inverts the answer. So a colleague's tag or a system tag is no drift, while a managed
tag changed, a rename or a deletion in the UI is; Read hands back the stored inputs with what the server
now has, which is what lets ``pulumi refresh --diff`` and the next ``pulumi preview --diff`` name the
property, and a secret input stays secret on that path.

Options: ``ignore_changes`` (on ``tags``, on ``metrics``), ``replace_on_changes``,
``delete_before_replace``, ``protect`` and ``retain_on_delete``, each doing what a user expects of it.

Each program declares one ``ExperimentRun`` from a dict the test edits between CLI commands, as a user
edits the program; the provider host talks to MLflow through a recording proxy, so "nothing is written"
and "the old run is deleted first" are checked on the wire. These tests skip without a CLI (and fail
instead under ``CI=true``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest
from pulumi.automation.errors import CommandError

from pulumi_mlflow_runs import ExperimentRun

from support.host import is_secret
from support.mlflow_proxy import RecordingProxy
from support.pulumi_cli import changes, exported_state, new_stack, state_resources

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


RUN = "evaluated"


def _program(experiment_id: str, spec: dict[str, Any], opts: dict[str, Any]) -> Callable[[], None]:
    """One run, declared from ``spec`` and ``opts`` as they are when the CLI runs the program."""

    def program() -> None:
        ExperimentRun(RUN, experiment_id=experiment_id, **spec, opts=pulumi.ResourceOptions(**opts))

    return program


def _stack(tmp_path: Path, pulumi_bin: Path, proxy: RecordingProxy, program: Callable[[], None]) -> Any:
    return new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})


def _flat(text: str) -> str:
    """The CLI's display with its column padding taken out: ``~ run_name   : "a"`` → ``~ run_name: "a"``."""
    return re.sub(r" +:", ":", re.sub(r" +", " ", text))


def _writes(proxy: RecordingProxy, mark: int) -> list[tuple[str, str | None]]:
    return [(w.endpoint, w.run_id) for w in proxy.writes_since(mark)]


def _tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    return dict(client.get_run(run_id).data.tags)


# ---- refresh --------------------------------------------------------------------------------------------


def test_refresh_finds_drift_only_in_what_the_program_manages_and_names_it(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-refresh-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {
        "run_name": "first",
        "status": "FINISHED",
        "tags": {"team": "vision"},
        "description": "baseline",
        "metrics": [{"key": "loss", "value": 0.5}],
    }
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {}))
    try:
        stack.up()
        run_id = state_resources(stack)[RUN]["id"]

        # A colleague's tag and a system tag: shown in `run`, and no drift.
        mlflow_client.set_tag(run_id, "reviewer", "bob")
        # (not one of the tags the provider sets at create to name the run's origin: the run view leaves those out)
        mlflow_client.set_tag(run_id, "mlflow.source.git.commit", "1a2b3c4")
        refresh = stack.refresh(diff=True)
        assert changes(refresh.summary.resource_changes) == {"same": 2}, refresh.stdout
        seen = {t["key"]: t["value"] for t in state_resources(stack)[RUN]["outputs"]["run"]["data"]["tags"]}
        assert seen["reviewer"] == "bob" and seen["mlflow.source.git.commit"] == "1a2b3c4"
        stack.preview(expect_no_changes=True)
        mark = proxy.mark()
        assert changes(stack.up().summary.resource_changes) == {"same": 2}
        assert _writes(proxy, mark) == []

        # A managed tag changed, the description edited and the run renamed in the UI: drift, named.
        mlflow_client.set_tag(run_id, "team", "drifted")
        mlflow_client.set_tag(run_id, "mlflow.note.content", "edited in the UI")
        mlflow_client.update_run(run_id, name="renamed")
        refresh = stack.refresh(diff=True)
        assert changes(refresh.summary.resource_changes) == {"update": 1, "same": 1}, refresh.stdout
        shown = _flat(refresh.stdout)
        assert '~ run_name: "first" => "renamed"' in shown, refresh.stdout
        assert '~ team: "vision" => "drifted"' in shown, refresh.stdout
        assert '~ description: "baseline" => "edited in the UI"' in shown, refresh.stdout
        preview = stack.preview(diff=True)
        assert changes(preview.change_summary) == {"update": 1, "same": 1}, preview.stdout
        shown = _flat(preview.stdout)
        assert '~ run_name: "renamed" => "first"' in shown, preview.stdout
        assert '~ team: "drifted" => "vision"' in shown, preview.stdout
        assert '~ description: "edited in the UI" => "baseline"' in shown, preview.stdout
        assert "experiment_id" not in shown and "loss" not in shown, "only what changes is listed"
        mark = proxy.mark()
        stack.up()
        assert sorted(_writes(proxy, mark)) == [("runs/log-batch", run_id), ("runs/update", run_id)]
        batch = next(w.body for w in proxy.writes_since(mark) if w.endpoint == "runs/log-batch")
        assert batch["tags"] == [
            {"key": "team", "value": "vision"},
            {"key": "mlflow.note.content", "value": "baseline"},
        ]
        run = mlflow_client.get_run(run_id)
        assert (run.info.run_name, run.data.tags["team"], run.data.tags["reviewer"]) == ("first", "vision", "bob")
        stack.preview(expect_no_changes=True)

        # Deleted in the UI: drift, named as the run's lifecycle stage; up restores the run.
        mlflow_client.delete_run(run_id)
        refresh = stack.refresh(diff=True)
        assert changes(refresh.summary.resource_changes) == {"update": 1, "same": 1}, refresh.stdout
        assert '+ lifecycle_stage: "deleted"' in _flat(refresh.stdout), refresh.stdout
        preview = stack.preview(diff=True)
        assert '- lifecycle_stage: "deleted"' in _flat(preview.stdout), preview.stdout
        mark = proxy.mark()
        stack.up()
        assert _writes(proxy, mark) == [("runs/restore", run_id)]
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()


def test_a_secret_tag_refreshed_stays_secret(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-refresh-secret-{uuid.uuid4().hex[:10]}")
    declared, edited = (f"plain-{uuid.uuid4().hex}" for _ in range(2))

    def program() -> None:
        ExperimentRun(RUN, experiment_id=experiment_id, tags={"team": "ml", "api_key": pulumi.Output.secret(declared)})

    stack = _stack(tmp_path, pulumi_bin, proxy, program)
    try:
        stack.up()
        run_id = state_resources(stack)[RUN]["id"]
        mlflow_client.set_tag(run_id, "api_key", edited)

        refresh = stack.refresh(diff=True, show_secrets=False)
        assert changes(refresh.summary.resource_changes) == {"update": 1, "same": 1}, refresh.stdout
        assert "~ api_key: [secret] => [secret]" in _flat(refresh.stdout), refresh.stdout
        exported = exported_state(stack)
        for plain in (declared, edited):
            assert plain not in refresh.stdout and plain not in exported, "a secret is in plaintext"
        res = state_resources(stack)[RUN]  # exported with --show-secrets: the secret wrappers are visible
        assert is_secret(res["inputs"]["tags"]["api_key"]) and res["inputs"]["tags"]["team"] == "ml"
        assert json.loads(res["inputs"]["tags"]["api_key"]["plaintext"]) == edited, "refresh recorded the edit"
        assert is_secret(res["outputs"]["tags"]["api_key"]) and is_secret(res["outputs"]["run"])

        preview = stack.preview(diff=True)
        assert "~ api_key: [secret] => [secret]" in _flat(preview.stdout), preview.stdout
        assert declared not in preview.stdout and edited not in preview.stdout
        stack.up()
        assert _tags(mlflow_client, run_id)["api_key"] == declared
        assert declared not in exported_state(stack)
    finally:
        stack.destroy()


# ---- ignore_changes ---------------------------------------------------------------------------------------


def test_ignore_changes_on_tags_keeps_edits_made_outside_pulumi(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-ignore-tags-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"run_name": "first", "tags": {"reviewed_by": "alice"}}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {"ignore_changes": ["tags"]}))
    try:
        stack.up()
        run_id = state_resources(stack)[RUN]["id"]
        assert _tags(mlflow_client, run_id)["reviewed_by"] == "alice", "tags are written at create"

        spec["tags"] = {"reviewed_by": "carol"}  # a program edit: ignored
        stack.preview(expect_no_changes=True)

        mlflow_client.set_tag(run_id, "reviewed_by", "bob")  # an edit in the UI: kept
        refresh = stack.refresh()
        mark = proxy.mark()
        stack.up()
        assert _writes(proxy, mark) == [], "up undid the edit of an ignored property"
        assert _tags(mlflow_client, run_id)["reviewed_by"] == "bob"
        stack.preview(expect_no_changes=True)
        assert changes(refresh.summary.resource_changes) == {"same": 2}, refresh.stdout  # ignored: no drift

        spec["run_name"] = "second"  # any other change is still made, and leaves the tags alone
        mark = proxy.mark()
        stack.up()
        assert _writes(proxy, mark) == [("runs/update", run_id)]
        run = mlflow_client.get_run(run_id)
        assert (run.info.run_name, run.data.tags["reviewed_by"]) == ("second", "bob")
    finally:
        stack.destroy()


def test_ignore_changes_on_metrics_logs_no_later_point(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-ignore-metrics-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"metrics": [{"key": "loss", "value": 0.5, "step": 0}]}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {"ignore_changes": ["metrics"]}))
    try:
        stack.up()
        run_id = state_resources(stack)[RUN]["id"]

        spec["metrics"] = [*spec["metrics"], {"key": "loss", "value": 0.4, "step": 1}]  # appended: ignored
        stack.preview(expect_no_changes=True)
        mark = proxy.mark()
        stack.up()
        assert _writes(proxy, mark) == []
        spec["metrics"] = [{"key": "loss", "value": 0.9, "step": 0}]  # altered: ignored too, no replace
        stack.preview(expect_no_changes=True)

        spec["tags"] = {"team": "nlp"}  # another change: an update that logs no point
        mark = proxy.mark()
        stack.up()
        assert [(w.endpoint, w.body.get("tags"), w.body.get("metrics")) for w in proxy.writes_since(mark)] == [
            ("runs/log-batch", [{"key": "team", "value": "nlp"}], None)
        ]
        assert [(p.step, p.value) for p in mlflow_client.get_metric_history(run_id, "loss")] == [(0, 0.5)]
    finally:
        stack.destroy()


# ---- replace_on_changes, delete_before_replace -----------------------------------------------------------


def test_replace_on_changes_replaces_the_run_when_a_listed_input_changes(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-replace-on-changes-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"run_name": "first", "tags": {"team": "vision"}}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {"replace_on_changes": ["tags"]}))
    try:
        stack.up()
        old = state_resources(stack)[RUN]["id"]

        spec["run_name"] = "second"  # not listed: an update, as without the option
        preview = stack.preview(diff=True)
        assert changes(preview.change_summary) == {"update": 1, "same": 1}, preview.stdout
        stack.up()
        assert state_resources(stack)[RUN]["id"] == old

        spec["tags"] = {"team": "nlp"}  # listed: a replace (the provider alone would update)
        preview = stack.preview(diff=True)
        assert changes(preview.change_summary) == {"replace": 1, "same": 1}, preview.stdout
        assert '~ team: "vision" => "nlp"' in _flat(preview.stdout), preview.stdout
        mark = proxy.mark()
        stack.up()
        new = state_resources(stack)[RUN]["id"]
        wire = [(e, r) for e, r in _writes(proxy, mark) if e in ("runs/create", "runs/delete")]
        assert [e for e, _ in wire] == ["runs/create", "runs/delete"] and wire[1][1] == old, wire
        assert new != old and mlflow_client.get_run(old).info.lifecycle_stage == "deleted"
        run = mlflow_client.get_run(new)
        assert (run.info.run_name, run.data.tags["team"]) == ("second", "nlp")
        stack.preview(expect_no_changes=True)

        # `up --replace` of the unchanged run: Create, asked as for a new resource, takes the run back (it is
        # what the program declares), and the delete of the replaced resource keeps it: still one run.
        stack.up(replace=[state_resources(stack)[RUN]["urn"]])
        assert state_resources(stack)[RUN]["id"] == new and mlflow_client.get_run(new).info.lifecycle_stage == "active"
        stack.preview(expect_no_changes=True)

        mlflow_client.set_tag(new, "team", "edited")  # drift of a listed input, once refreshed, is a change too
        stack.refresh()
        preview = stack.preview(diff=True)
        assert changes(preview.change_summary) == {"replace": 1, "same": 1}, preview.stdout
        assert '~ team: "edited" => "nlp"' in _flat(preview.stdout), preview.stdout
    finally:
        stack.destroy()


def test_delete_before_replace_deletes_the_old_run_first(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-delete-first-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"params": {"lr": "0.1"}}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {"delete_before_replace": True}))
    try:
        stack.up()
        old = state_resources(stack)[RUN]["id"]
        spec["params"] = {"lr": "0.2"}  # params are write-once: a replace
        mark = proxy.mark()
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"replace": 1, "same": 1}, up.stdout
        wire = [(e, r) for e, r in _writes(proxy, mark) if e in ("runs/create", "runs/delete")]
        assert [e for e, _ in wire] == ["runs/delete", "runs/create"] and wire[0][1] == old, wire
        new = state_resources(stack)[RUN]["id"]
        assert mlflow_client.get_run(old).info.lifecycle_stage == "deleted"
        assert mlflow_client.get_run(new).data.params == {"lr": "0.2"}
    finally:
        stack.destroy()


# ---- protect, retain_on_delete ------------------------------------------------------------------------------


def test_protect_refuses_replace_and_destroy(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-protect-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"params": {"lr": "0.1"}}
    opts: dict[str, Any] = {"protect": True}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, opts))
    try:
        stack.up()
        run_id = state_resources(stack)[RUN]["id"]

        spec["params"] = {"lr": "0.2"}
        mark = proxy.mark()
        with pytest.raises(CommandError) as refused:
            stack.preview()
        assert "unable to replace resource" in str(refused.value) and "marked for protection" in str(refused.value)
        assert proxy.writes_since(mark) == []

        spec["params"] = {"lr": "0.1"}
        with pytest.raises(CommandError) as refused:
            stack.destroy()
        assert "cannot be deleted" in str(refused.value) and "protected" in str(refused.value)
        assert _writes(proxy, mark) == []
        assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"
    finally:
        opts.clear()  # unprotect (an up records it), then clean up
        stack.up()
        stack.destroy()


def test_retain_on_delete_leaves_the_run_in_mlflow(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    experiment_id = mlflow_client.create_experiment(f"cli-retain-{uuid.uuid4().hex[:10]}")
    spec: dict[str, Any] = {"params": {"lr": "0.1"}}
    stack = _stack(tmp_path, pulumi_bin, proxy, _program(experiment_id, spec, {"retain_on_delete": True}))
    runs: list[str] = []
    try:
        stack.up()
        runs.append(state_resources(stack)[RUN]["id"])
        spec["params"] = {"lr": "0.2"}
        mark = proxy.mark()
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"replace": 1, "same": 1}, up.stdout
        runs.append(state_resources(stack)[RUN]["id"])
        assert "runs/delete" not in [e for e, _ in _writes(proxy, mark)]
        mark = proxy.mark()
        destroy = stack.destroy()
        assert changes(destroy.summary.resource_changes) == {"delete": 2}, destroy.stdout
        assert _writes(proxy, mark) == []
        assert [mlflow_client.get_run(r).info.lifecycle_stage for r in runs] == ["active", "active"]
    finally:
        stack.destroy()
        for run_id in runs:
            mlflow_client.delete_run(run_id)

"""Whole programs through the real Pulumi CLI: what users see, proven where they see it.

The CLI (``scripts/pulumi-cli.sh``: on PATH, or built from Go modules) runs each program as an Automation
API inline program against a local file backend with passphrase secrets. The provider host it starts
talks to the test MLflow server through a recording proxy, so "a preview sends nothing", "the
replacement is created before the old run is deleted" and "an append logs only the new point" are checked
on the wire. These tests skip without a CLI, and fail instead under ``CI=true``.

One scenario also runs through the repository's engine stand-in (``support.engine``) and the two must
report the same operation for every resource at every step: where they differ, the CLI is right.
"""

from __future__ import annotations

import getpass
import hashlib
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest
import yaml

from pulumi_mlflow_runs import Experiment, ExperimentRun

from support.engine import Engine
from support.fault_proxy import FaultProxy
from support.host import is_secret
from support.mlflow_proxy import RecordingProxy
from support.pulumi_cli import (
    changes,
    cli,
    exported_state,
    interrupted_up,
    kill_cli,
    new_stack,
    program_from_file,
    run_with_ops,
    state_resources,
)
from support.runs import all_runs, endpoints, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.mlflow_server import MlflowServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart"
EVALUATION = EXAMPLES / "evaluation-as-data"





def _active_runs(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    return {rid: r for rid, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


# ---- the quickstart, the whole lifecycle ---------------------------------------------------------------


@pytest.mark.mlflow2
def test_quickstart_lifecycle(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("cli-quickstart")
    program = program_from_file(QUICKSTART / "__main__.py")
    stack = new_stack(
        pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url}, config={"experimentName": name}
    )
    runs = {"warmup", "train"}
    try:
        # preview of a fresh stack: all creates, not one request to MLflow
        mark = proxy.mark()
        preview, ops = run_with_ops(stack.preview, diff=True)
        assert ops == dict.fromkeys({"quickstart", *runs}, "create"), preview.stdout
        assert "experiment_id: [unknown]" in preview.stdout.replace("  ", " ")
        assert proxy.since(mark) == []
        assert mlflow_client.get_experiment_by_name(name) is None

        mark = proxy.mark()
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 4}, up.stdout
        assert endpoints(proxy.writes_since(mark)).count("runs/create") == 2
        out = {key: value.value for key, value in up.outputs.items()}
        experiment_id = out["experiment_id"]
        train = mlflow_client.get_run(out["train_run_id"])
        assert train.data.params == {"model": "resnet18", "learning_rate": "0.001", "epochs": "6"}
        assert out["train_latest_metrics"] == {"loss": 0.27, "accuracy": 0.9} == train.data.metrics
        assert mlflow_client.get_run(out["warmup_run_id"]).info.status == "RUNNING"
        # the dynamic door names the stack and the user running pulumi where MLflow's UI shows them
        assert train.info.user_id == getpass.getuser() == train.data.tags["mlflow.user"]
        shown = [train.data.tags[f"pulumi.{k}"] for k in ("project", "stack", "resource")]
        assert shown == ["mlflow-runs-test", "test", "train"], train.data.tags
        assert train.data.tags["mlflow.source.name"] == "pulumi · mlflow-runs-test · test · train"
        summary = Path(mlflow_client.download_artifacts(out["train_run_id"], "notes/summary.md", str(tmp_path)))
        assert summary.read_text() == "# train-resnet18\n\nloss 0.27, acc 0.9\n"
        stored = out["train_artifact_files"]["notes/summary.md"]
        assert stored["sha256"] == hashlib.sha256(summary.read_bytes()).hexdigest(), stored
        plain = state_resources(stack)["train"]["outputs"]
        assert not any(is_secret(plain[k]) for k in ("run", "latest_metrics", "artifact_uri", "tags")), (
            "a program without secrets keeps its outputs in the clear"
        )

        # unchanged: the CLI's own no-change check passes, and an up writes nothing
        stack.preview(expect_no_changes=True)
        mark = proxy.mark()
        again = stack.up()
        assert changes(again.summary.resource_changes) == {"same": 4}, again.stdout
        assert proxy.writes_since(mark) == []

        # drift made in MLflow (a managed tag changed, a run deleted): refresh records it, up heals it
        mlflow_client.set_tag(out["train_run_id"], "team", "drifted")
        mlflow_client.delete_run(out["warmup_run_id"])
        mark = proxy.mark()
        refresh = stack.refresh()
        assert changes(refresh.summary.resource_changes) == {"update": 2, "same": 2}, refresh.stdout
        assert proxy.writes_since(mark) == [], "refresh only reads"
        state = state_resources(stack)
        assert state["warmup"]["outputs"]["lifecycle_stage"] == "deleted"
        assert state["train"]["outputs"]["tags"]["team"] == "drifted"
        mark = proxy.mark()
        heal, ops = run_with_ops(stack.up)
        assert ops == {"quickstart": "same", "warmup": "update", "train": "update"}, heal.stdout
        assert sorted((w.endpoint, w.run_id) for w in proxy.writes_since(mark)) == [
            ("runs/log-batch", out["train_run_id"]),
            ("runs/restore", out["warmup_run_id"]),
        ]
        assert mlflow_client.get_run(out["warmup_run_id"]).info.lifecycle_stage == "active"
        assert mlflow_client.get_run(out["train_run_id"]).data.tags["team"] == "vision"
        stack.preview(expect_no_changes=True)

        # destroy empties the experiment; an up after it starts again from nothing
        destroy = stack.destroy()
        assert changes(destroy.summary.resource_changes) == {"delete": 4}, destroy.stdout
        assert _active_runs(mlflow_client, experiment_id) == {}
        assert mlflow_client.get_experiment(experiment_id).lifecycle_stage == "deleted"
        again = stack.up()
        assert changes(again.summary.resource_changes) == {"create": 4}, again.stdout
        new_out = {key: value.value for key, value in again.outputs.items()}
        assert new_out["experiment_id"] == experiment_id, "the experiment comes back from the trash"
        assert set(_active_runs(mlflow_client, experiment_id)) == {new_out["train_run_id"], new_out["warmup_run_id"]}
    finally:
        stack.destroy()
        stack.workspace.remove_stack("test")


# ---- evaluation-as-data: edits of the YAML file, and the stand-in held against the CLI ------------------


def _edit_evaluations(project: Path, edit: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    path = project / "evaluations.yaml"
    spec = yaml.safe_load(path.read_text())
    edit({entry["name"]: entry for entry in spec["evaluations"]})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def test_evaluation_as_data_edits_agree_with_the_stand_in(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    """Each edit of evaluations.yaml: the CLI's operation per resource, the wire, and the stand-in's answer."""
    project = tmp_path / "evaluation-as-data"
    shutil.copytree(EVALUATION, project)
    name = unique("cli-evals")
    config = {"experimentName": name}
    env = {"MLFLOW_TRACKING_URI": proxy.url}
    stack = new_stack(pulumi_bin, tmp_path / "cli", program_from_file(project / "__main__.py"), env, config=config)
    # The stand-in runs the same program on its own state, against its own experiment.
    stand_in = Engine(project, tmp_path / "stand-in.json", env, {"experimentName": name + "-stand-in"})

    def both(step: str) -> dict[str, str]:
        _, cli_ops = run_with_ops(getattr(stack, step))
        stand_in_ops = getattr(stand_in, step)().ops()
        assert cli_ops == stand_in_ops, f"{step}: the CLI says {cli_ops}, the stand-in {stand_in_ops}"
        return cli_ops

    try:
        assert both("preview") == dict.fromkeys({"evaluations", "bert-base-sst2", "distilbert-sst2"}, "create")
        both("up")
        first = {key: value.value for key, value in stack.outputs().items()}
        state = state_resources(stack)
        run_ids = {n: state[n]["outputs"]["run_id"] for n in ("bert-base-sst2", "distilbert-sst2")}
        report = Path(mlflow_client.download_artifacts(run_ids["bert-base-sst2"], "report.md", str(tmp_path)))
        assert "| accuracy | 0.924 |" in report.read_text(), "each run carries its generated report"
        assert both("preview") == {"evaluations": "same", "bert-base-sst2": "same", "distilbert-sst2": "same"}

        # a tag edit: exactly that run, an update, one log-batch with the one tag
        _edit_evaluations(project, lambda e: e["bert-base-sst2"]["tags"].update(reviewed_by="carol"))
        assert both("preview") == {"evaluations": "same", "bert-base-sst2": "update", "distilbert-sst2": "same"}
        mark = proxy.mark()
        both("up")
        writes = [w for w in proxy.writes_since(mark) if w.run_id == run_ids["bert-base-sst2"]]
        assert [(w.endpoint, w.body.get("tags"), w.body.get("metrics")) for w in writes] == [
            ("runs/log-batch", [{"key": "reviewed_by", "value": "carol"}], None)
        ]

        # an appended result: an update that logs only the new point
        _edit_evaluations(project, lambda e: e["bert-base-sst2"]["metrics"].update(precision=0.93))
        assert both("preview")["bert-base-sst2"] == "update"
        mark = proxy.mark()
        both("up")
        writes = [w for w in proxy.writes_since(mark) if w.run_id == run_ids["bert-base-sst2"]]
        assert [(w.endpoint, [(p["key"], p["value"]) for p in w.body["metrics"]]) for w in writes] == [
            ("runs/log-batch", [("precision", 0.93)])
        ]
        history = mlflow_client.get_metric_history(run_ids["bert-base-sst2"], "accuracy")
        assert [p.value for p in history] == [0.924], "points already logged are never sent again"

        # a param edit: a replace, the new run created before the old one is deleted
        _edit_evaluations(project, lambda e: e["distilbert-sst2"]["params"].update(batch_size="128"))
        assert both("preview") == {"evaluations": "same", "bert-base-sst2": "same", "distilbert-sst2": "replace"}
        mark = proxy.mark()
        both("up")
        wire = [(w.endpoint, w.run_id) for w in proxy.writes_since(mark)]
        cli_writes = [w for w in wire if w[0] in ("runs/create", "runs/delete")]
        old = run_ids["distilbert-sst2"]
        new = state_resources(stack)["distilbert-sst2"]["outputs"]["run_id"]
        assert new != old
        assert cli_writes.index(("runs/delete", old)) > [e for e, _ in cli_writes].index("runs/create")
        assert mlflow_client.get_run(old).info.lifecycle_stage == "deleted"
        assert mlflow_client.get_run(new).data.params["batch_size"] == "128"

        assert both("preview") == {"evaluations": "same", "bert-base-sst2": "same", "distilbert-sst2": "same"}
        both("destroy")
        assert _active_runs(mlflow_client, first["experiment_id"]) == {}
    finally:
        stack.destroy()
        stand_in.destroy()


# ---- secrets and stack config ---------------------------------------------------------------------------



def _hides(value: Any) -> bool:
    """Secret as a whole, or every value that came from a secret input is (a dict with a secret entry)."""
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(_hides(v) for v in value.values())
    if isinstance(value, list):
        return bool(value) and all(_hides(v) for v in value)
    return False


def test_secret_inputs_never_reach_state_in_plaintext(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    tag_secret, param_secret, note_secret = (f"plain-{uuid.uuid4().hex}" for _ in range(3))

    def program() -> None:
        config = pulumi.Config()
        exp = Experiment("secrets", name=config.require("experimentName"))
        run = ExperimentRun(
            "secret-run",
            experiment_id=exp.experiment_id,
            run_name="with-secrets",
            tags={"team": "ml", "api_key": pulumi.Output.secret(tag_secret)},
            params={"password": config.require_secret("dbPassword")},
            description=pulumi.Output.secret(note_secret),
            metrics=[{"key": "loss", "value": 0.5}],
        )
        pulumi.export("run_id", run.run_id)

    stack = new_stack(
        pulumi_bin,
        tmp_path,
        program,
        {"MLFLOW_TRACKING_URI": proxy.url},
        config={"experimentName": unique("cli-secrets")},
        secret_config={"dbPassword": param_secret},
    )
    try:
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 3}, up.stdout
        run = mlflow_client.get_run(up.outputs["run_id"].value)
        assert run.data.tags["api_key"] == tag_secret and run.data.params["password"] == param_secret
        exported = exported_state(stack)
        for plain in (tag_secret, param_secret, note_secret):
            assert plain not in exported, "a secret input is in plaintext in the exported state"
            assert plain not in up.stdout
        res = state_resources(stack)["secret-run"]
        inputs = res["inputs"]
        assert is_secret(inputs["tags"]["api_key"]) and inputs["tags"]["team"] == "ml", "only the secret value"
        assert is_secret(inputs["params"])  # turned into strings by an apply: secret as a whole
        assert is_secret(inputs["description"])
        for key in ("tags", "params", "description", "run"):
            assert _hides(res["outputs"][key]), key
        assert is_secret(res["outputs"]["run"]), "the run view repeats them all: secret as a whole"
        assert not is_secret(res["outputs"]["run_id"]), "only what repeats a secret is secret"
        assert "plain-" not in (tmp_path / "Pulumi.test.yaml").read_text()
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()


def test_every_input_given_as_a_secret_stays_secret_all_the_way_down(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    """Each input from Output.secret: not one value in plaintext in the state, inside ``run`` included."""
    mark = uuid.uuid4().hex[:12]
    start = 1_767_225_600_000 + int(mark[:6], 16)
    experiment_id = mlflow_client.create_experiment(unique("cli-secret-all"))
    values: dict[str, Any] = {
        "experiment_id": experiment_id,
        "run_name": f"name-{mark}",
        "start_time": start,
        "end_time": start + 1,
        "status": "FINISHED",
        "params": {"p": f"param-{mark}"},
        "tags": {"t": f"tag-{mark}"},
        "description": f"note-{mark}",
        "metrics": [{"key": f"metric-{mark}", "value": 0.123456789, "step": 3}],
        "dataset_inputs": [
            {"dataset": {"name": f"ds-{mark}", "digest": "d", "source_type": "local", "source": "s"}, "tags": {}}
        ],
        "model_inputs": [{"model_id": f"min-{mark}"}],
        "model_outputs": [{"model_id": f"mout-{mark}", "step": 1}],
    }

    def program() -> None:
        ExperimentRun("all-secret", **{k: pulumi.Output.secret(v) for k, v in values.items()})

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 2}, up.stdout
        exported = exported_state(stack)
        for needle in (mark, str(start), "0.123456789"):
            assert needle not in exported, needle
        outputs = state_resources(stack)["all-secret"]["outputs"]
        assert is_secret(outputs["run"]) and is_secret(outputs["latest_metrics"])
        assert is_secret(outputs["artifact_uri"]) and is_secret(outputs["logged_points"])
        for key in values:
            assert _hides(outputs["logged_points" if key == "metrics" else key]), key
        assert not is_secret(outputs["run_id"]) and not is_secret(outputs["user_id"])
        stack.preview(expect_no_changes=True)
    finally:
        stack.destroy()


def test_stack_config_token_reaches_the_server_and_never_state(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    token = f"dapi-test-{uuid.uuid4().hex}"
    name = unique("cli-config")

    def program() -> None:
        exp = Experiment("configured", name=name)
        run = ExperimentRun("configured-run", experiment_id=exp.experiment_id, tags={"a": "b"})
        pulumi.export("run_id", run.run_id)

    with FaultProxy(mlflow_server.url, require_token=token) as guarded:
        # no MLFLOW_TRACKING_URI: the stack config is the only way to the server
        stack = new_stack(
            pulumi_bin,
            tmp_path,
            program,
            {},
            config={"databricks:host": guarded.url},
            secret_config={"databricks:token": token},
        )
        try:
            up = stack.up()
            assert changes(up.summary.resource_changes) == {"create": 3}, up.stdout
            assert [r.status for r in guarded.requests if r.fault == "auth"] == [], "every request had the token"
            assert guarded.requests, "the provider went through the guarded proxy"
            assert mlflow_client.get_run(up.outputs["run_id"].value).data.tags["a"] == "b"
            assert token not in exported_state(stack)
            assert token not in up.stdout + up.stderr
            assert token not in (tmp_path / "Pulumi.test.yaml").read_text()

            # a wrong token: a clear 401, and no token is ever echoed
            wrong = f"dapi-wrong-{uuid.uuid4().hex}"
            stack.set_config("databricks:token", _config_value(wrong, secret=True))
            from pulumi.automation.errors import CommandError

            def changed() -> None:
                exp = Experiment("configured", name=name)
                ExperimentRun("configured-run", experiment_id=exp.experiment_id, tags={"a": "c"})

            with pytest.raises(CommandError) as failed:
                stack.up(program=changed)
            text = str(failed.value)
            assert "401" in text or "UNAUTHENTICATED" in text, text
            assert wrong not in text and token not in text
            assert "Traceback" not in text
        finally:
            # refresh and destroy use the provider configuration recorded by the last up: record the good one
            stack.set_config("databricks:token", _config_value(token, secret=True))
            stack.up(program=program)
            stack.destroy()


def _config_value(value: str, *, secret: bool = False) -> Any:
    from pulumi import automation as auto

    return auto.ConfigValue(value=value, secret=secret)


# ---- parallelism ----------------------------------------------------------------------------------------


def test_hundred_runs_at_the_default_parallelism_are_created_exactly_once(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("cli-parallel")
    experiment_id = mlflow_client.create_experiment(name)

    def program() -> None:
        for i in range(100):
            ExperimentRun(
                f"run-{i:03d}",
                experiment_id=experiment_id,
                params={"i": str(i)},
                metrics=[{"key": "m", "value": float(i), "step": s} for s in range(3)],
                dataset_inputs=[
                    {"dataset": {"name": "shared", "digest": "d1", "source_type": "local", "source": "x"}, "tags": {}}
                ],
            )

    stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})
    try:
        mark = proxy.mark()
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 101}, up.stdout
        creates = [w for w in proxy.writes_since(mark) if w.endpoint == "runs/create"]
        assert len(creates) == 100
        runs = all_runs(mlflow_client, experiment_id)
        assert len(runs) == 100 and all(r.info.lifecycle_stage == "active" for r in runs.values())
        assert sorted(int(r.data.params["i"]) for r in runs.values()) == list(range(100))
        state = state_resources(stack)
        assert {state[f"run-{i:03d}"]["id"] for i in range(100)} == set(runs)
    finally:
        stack.destroy()


# ---- an interrupted up ----------------------------------------------------------------------------------


class _SlowBatches(RecordingProxy):
    """Holds every log-batch for a while, so that a kill lands between runs/create and the run's last write."""

    delay = 0.0

    def _intercept(self, endpoint: str, headers: Any) -> tuple[str, int, bytes, dict[str, str]] | None:
        if endpoint == "runs/log-batch" and self.delay:
            time.sleep(self.delay)
        return None


def test_interrupted_up_leaves_each_run_once_and_no_orphan(
    tmp_path: Path, pulumi_bin: Path, mlflow_env: str, mlflow_server: MlflowServer, mlflow_client: MlflowClient
) -> None:
    from pulumi.automation.errors import CommandError

    experiment_id = mlflow_client.create_experiment(unique("cli-interrupted"))
    names = [f"run-{i:02d}" for i in range(12)]

    def program() -> None:
        for name in names:
            ExperimentRun(
                name,
                experiment_id=experiment_id,
                run_name=name,
                params={"name": name},
                tags={"kind": "interrupted"},
                metrics=[{"key": "loss", "value": 1.0 / (s + 1), "step": s} for s in range(5)],
            )

    with _SlowBatches(mlflow_server.url) as proxy:
        stack = new_stack(pulumi_bin, tmp_path, program, {"MLFLOW_TRACKING_URI": proxy.url})
        try:
            proxy.delay = 30.0
            killed: list[int] = []
            ended = interrupted_up(stack, lambda: proxy.requests, 4, lambda: killed.append(kill_cli()))
            assert killed[0] > 0
            assert isinstance(ended, CommandError)
            proxy.delay = 0.0
            half_made = _active_runs(mlflow_client, experiment_id)
            assert half_made, "the kill landed after some runs were created"
            assert all(not r.data.metrics for r in half_made.values()), "and before their last write"

            # what the CLI asks for: remove the killed update's lock, clear the pending creates whose outcome
            # it cannot know, then up again
            cli(stack, "cancel", "--yes")
            cli(stack, "refresh", "--clear-pending-creates", "--yes", "--non-interactive")
            up, ops = run_with_ops(stack.up)
            assert ops == dict.fromkeys(names, "create"), up.stdout
            active = _active_runs(mlflow_client, experiment_id)
            assert sorted(r.info.run_name for r in active.values()) == sorted(names), "each run exactly once"
            assert set(half_made) <= set(active), "the half-made runs were finished, not left behind"
            assert all_runs(mlflow_client, experiment_id).keys() == active.keys(), "nothing was thrown away"
            for run in active.values():
                assert run.data.params == {"name": run.info.run_name}
                assert len(mlflow_client.get_metric_history(run.info.run_id, "loss")) == 5
            stack.preview(expect_no_changes=True)
        finally:
            proxy.delay = 0.0
            stack.destroy()

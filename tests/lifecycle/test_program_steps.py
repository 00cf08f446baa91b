"""Whole programs under the engine stand-in: preview → up → up → change → refresh → destroy.

Every step runs the program with the Pulumi SDK and sends each resource through a real
``python -m pulumi.dynamic`` host (``support.engine``) to the real MLflow server. The provider host talks
to the server through a recording proxy (``support.mlflow_proxy``), so "nothing was written" and "this
was written, in this order" are checked on the wire; the server's own view is checked with MlflowClient.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest
import yaml

from pulumi_mlflow_runs import Experiment, ExperimentRun

from support.engine import UNKNOWN, Engine, EngineError, Result
from support.mlflow_proxy import RecordingProxy
from support.runs import all_runs, endpoints, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


pytestmark = pytest.mark.slow  # whole programs, seconds each

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart"
EVALUATION = EXAMPLES / "evaluation-as-data"


@pytest.fixture
def host_env(mlflow_env: str, proxy: RecordingProxy) -> dict[str, str]:
    """The provider host's environment: credentials hidden (mlflow_env), the server behind the proxy."""
    return {"MLFLOW_TRACKING_URI": proxy.url}





def _assert_destroyed(client: MlflowClient, experiment_id: str, run_ids: set[str], result: Result) -> None:
    runs = all_runs(client, experiment_id)
    assert set(runs) == run_ids, "the experiment holds exactly the runs the stack ever created"
    assert {rid: r.info.lifecycle_stage for rid, r in runs.items()} == dict.fromkeys(run_ids, "deleted")
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    assert set(result.counts()) == {"delete"}


# ---- quickstart ----------------------------------------------------------------------------------------


@pytest.mark.mlflow2
def test_quickstart_preview_up_noop_drift_refresh_heal_destroy(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("quickstart")
    engine = Engine(QUICKSTART, tmp_path / "state.json", host_env, {"experimentName": name}, stack="dev")

    # preview of a fresh stack: everything is a create, the runs' experiment is not known yet, nothing is sent
    mark = proxy.mark()
    preview = engine.preview()
    assert preview.ops() == {"quickstart": "create", "warmup": "create", "train": "create"}
    assert preview.step("train").new["experiment_id"] == UNKNOWN
    assert preview.step("warmup").new["experiment_id"] == UNKNOWN
    assert preview.step("quickstart").new["name"] == name
    assert preview.outputs == dict.fromkeys(
        ("experiment_id", "warmup_run_id", "train_run_id", "train_artifact_uri", "warmup_artifact_uri",
         "train_latest_metrics", "train_artifact_files"),
        UNKNOWN,
    )  # fmt: skip
    assert proxy.since(mark) == [], "check and diff make no request at all"
    assert mlflow_client.get_experiment_by_name(name) is None
    assert not engine.state_file.exists()

    # up: created, outputs exported
    mark = proxy.mark()
    up = engine.up()
    assert up.ops() == {"quickstart": "create", "warmup": "create", "train": "create"}
    assert endpoints(proxy.writes_since(mark)).count("runs/create") == 2
    out = up.outputs
    experiment_id = out["experiment_id"]
    experiment = mlflow_client.get_experiment(experiment_id)
    assert (experiment.name, experiment.tags.get("owner")) == (name, "ml-platform")
    train = mlflow_client.get_run(out["train_run_id"])
    assert train.info.experiment_id == experiment_id
    assert (train.info.status, train.info.start_time, train.info.end_time) == (
        "FINISHED", 1_767_225_600_000, 1_767_229_200_000,
    )  # fmt: skip
    assert train.data.params == {"model": "resnet18", "learning_rate": "0.001", "epochs": "6"}
    assert {k: train.data.tags[k] for k in ("team", "dataset", "mlflow.note.content")} == {
        "team": "vision", "dataset": "imagenet-mini",
        "mlflow.note.content": "Baseline ResNet-18 on the mini ImageNet split.",
    }  # fmt: skip
    loss = mlflow_client.get_metric_history(out["train_run_id"], "loss")
    assert sorted((p.step, p.value) for p in loss) == list(enumerate([0.92, 0.61, 0.44, 0.35, 0.30, 0.27]))
    assert out["train_latest_metrics"] == {"loss": 0.27, "accuracy": 0.9} == train.data.metrics
    assert out["train_artifact_uri"] == train.info.artifact_uri
    warmup = mlflow_client.get_run(out["warmup_run_id"])
    assert (warmup.info.status, warmup.data.params) == ("RUNNING", {"stage": "warmup"})
    assert out["warmup_artifact_uri"] == warmup.info.artifact_uri

    # second up, unchanged program: no change at all, not a single write
    mark = proxy.mark()
    again = engine.up()
    assert again.counts() == {"same": 3}
    assert again.events == []
    assert proxy.writes_since(mark) == []
    assert again.outputs == out

    # drift made with MlflowClient: a tag changed, a run deleted
    mlflow_client.set_tag(out["train_run_id"], "team", "drifted")
    mlflow_client.delete_run(out["warmup_run_id"])
    mark = proxy.mark()
    refresh = engine.refresh()
    assert refresh.ops() == {"quickstart": "same", "warmup": "refresh-changed", "train": "refresh-changed"}
    assert "tags" in refresh.step("train").diffs
    assert refresh.step("train").new["tags"] == {"team": "drifted", "dataset": "imagenet-mini"}
    assert "lifecycle_stage" in refresh.step("warmup").diffs
    assert refresh.step("warmup").new["lifecycle_stage"] == "deleted"
    assert proxy.writes_since(mark) == [], "refresh only reads"
    assert {r["name"]: r["outputs"]["lifecycle_stage"] for r in engine.resources()}["warmup"] == "deleted"

    # the next preview plans the healing, the next up heals: the deleted run is restored, the tag put back
    mark = proxy.mark()
    assert engine.preview().ops() == {"quickstart": "same", "warmup": "update", "train": "update"}
    assert proxy.since(mark) == []
    mark = proxy.mark()
    heal = engine.up()
    assert heal.ops() == {"quickstart": "same", "warmup": "update", "train": "update"}
    writes = proxy.writes_since(mark)
    assert sorted((w.endpoint, w.run_id) for w in writes) == [
        ("runs/log-batch", out["train_run_id"]),
        ("runs/restore", out["warmup_run_id"]),
    ]
    assert writes[[w.endpoint for w in writes].index("runs/log-batch")].body["tags"] == [
        {"key": "team", "value": "vision"}
    ]
    assert mlflow_client.get_run(out["warmup_run_id"]).info.lifecycle_stage == "active"
    assert mlflow_client.get_run(out["train_run_id"]).data.tags["team"] == "vision"
    assert heal.outputs == out
    mark = proxy.mark()
    assert engine.up().counts() == {"same": 3}
    assert proxy.writes_since(mark) == []

    # destroy: every run and the experiment deleted on the server
    destroy = engine.destroy()
    assert [s.name for s in destroy.steps][-1] == "quickstart", "the experiment goes last: the runs depend on it"
    assert {s.name for s in destroy.steps} == {"train", "warmup", "quickstart"}
    _assert_destroyed(mlflow_client, experiment_id, {out["train_run_id"], out["warmup_run_id"]}, destroy)
    assert engine.resources() == []


# ---- evaluation-as-data --------------------------------------------------------------------------------


def _edit_evaluations(project: Path, edit: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    path = project / "evaluations.yaml"
    spec = yaml.safe_load(path.read_text())
    edit({entry["name"]: entry for entry in spec["evaluations"]})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.mark.mlflow2
def test_evaluation_as_data_tag_edit_param_edit_append_destroy(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    project = tmp_path / "evaluation-as-data"
    shutil.copytree(EVALUATION, project)
    stack = unique("ci")
    # Registrations run in parallel: both runs log the same dataset at once, which MLflow's SQL store
    # answers with a UNIQUE-constraint 400 for one of them; the provider retries that idempotent request.
    engine = Engine(project, tmp_path / "state.json", host_env, stack=stack)
    names = {"evaluations", "bert-base-sst2", "distilbert-sst2"}

    mark = proxy.mark()
    preview = engine.preview()
    assert preview.ops() == dict.fromkeys(names, "create")
    assert {preview.step(n).new["experiment_id"] for n in ("bert-base-sst2", "distilbert-sst2")} == {UNKNOWN}
    assert preview.outputs == {
        "experiment_id": UNKNOWN, "results": {"bert-base-sst2": UNKNOWN, "distilbert-sst2": UNKNOWN},
    }  # fmt: skip
    assert proxy.since(mark) == []
    assert mlflow_client.get_experiment_by_name(f"model-evaluations-{stack}") is None

    up = engine.up()
    assert up.ops() == dict.fromkeys(names, "create")
    assert up.outputs["results"] == {
        "bert-base-sst2": {"accuracy": 0.924, "f1": 0.921},
        "distilbert-sst2": {"accuracy": 0.911, "f1": 0.907},
    }
    experiment_id = up.outputs["experiment_id"]
    assert mlflow_client.get_experiment(experiment_id).name == f"model-evaluations-{stack}"
    ids = {s.name: s.id for s in up.steps}
    bert = mlflow_client.get_run(ids["bert-base-sst2"])
    assert bert.data.params == {"model": "bert-base-uncased", "batch_size": "32", "max_len": "128"}
    assert (bert.info.status, bert.data.tags["reviewed_by"]) == ("FINISHED", "alice")
    (dataset_input,) = bert.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.dataset.digest) == ("sst2", "9a1b2c3d")

    mark = proxy.mark()
    assert engine.up().counts() == {"same": 3}
    assert proxy.writes_since(mark) == []

    # The stand-in's own summary of each preview (docs/ci.md shows the real CLI's:
    # tests/preview_and_state/test_preview_display.py).
    assert engine.preview().render(diff=True) == "Resources:\n    3 unchanged"

    # a tag edit: one in-place update, one request
    _edit_evaluations(project, lambda e: e["bert-base-sst2"]["tags"].update(reviewed_by="carol"))
    mark = proxy.mark()
    preview = engine.preview()
    assert [(s.name, s.op, s.diffs) for s in preview.changed()] == [("bert-base-sst2", "update", ("tags",))]
    assert proxy.since(mark) == []
    assert preview.render(diff=True) == (
        "~ pulumi-python:dynamic/mlflow:ExperimentRun bert-base-sst2 update [diff: ~tags]\n"
        '      ~ tags.reviewed_by: "alice" => "carol"\n'
        "Resources:\n    ~ 1 to update\n    2 unchanged"
    )
    # the CI recipe previews without MLflow credentials: a preview needs no server at all
    offline = Engine(project, engine.state_file, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, stack=stack)
    assert offline.preview().ops() == preview.ops()
    update = engine.up()
    assert [(s.name, s.op, s.id) for s in update.changed()] == [("bert-base-sst2", "update", ids["bert-base-sst2"])]
    (write,) = proxy.writes_since(mark)
    assert (write.endpoint, write.run_id) == ("runs/log-batch", ids["bert-base-sst2"])
    assert write.body["tags"] == [{"key": "reviewed_by", "value": "carol"}]
    assert "params" not in write.body and "metrics" not in write.body
    assert mlflow_client.get_run(ids["bert-base-sst2"]).data.tags["reviewed_by"] == "carol"

    # a param edit: replace, the new run created before the old one is deleted
    _edit_evaluations(project, lambda e: e["distilbert-sst2"]["params"].update(batch_size="128"))
    mark = proxy.mark()
    preview = engine.preview()
    (step,) = preview.changed()
    assert (step.name, step.op, step.diffs, step.replaces, step.id) == (
        "distilbert-sst2", "replace", ("params",), ("params",), "",
    )  # fmt: skip
    assert proxy.since(mark) == []
    assert preview.render(diff=True) == (
        "+- pulumi-python:dynamic/mlflow:ExperimentRun distilbert-sst2 replace [diff: ~params]\n"
        '      ~ params.batch_size: "64" => "128"\n'
        "Resources:\n    +- 1 to replace\n    2 unchanged"
    )
    replace = engine.up()
    (step,) = replace.changed()
    old_id, new_id = ids["distilbert-sst2"], step.id
    assert (step.op, step.old_id) == ("replace", old_id) and new_id != old_id
    assert replace.events == [("create", "distilbert-sst2", new_id), ("delete", "distilbert-sst2", old_id)]
    wire = endpoints(proxy.writes_since(mark))
    deleted_at = [i for i, r in enumerate(proxy.writes_since(mark)) if r.endpoint == "runs/delete"]
    assert wire.index("runs/create") < deleted_at[0]
    assert [proxy.writes_since(mark)[i].run_id for i in deleted_at] == [old_id]
    assert mlflow_client.get_run(old_id).info.lifecycle_stage == "deleted"
    new_run = mlflow_client.get_run(new_id)
    assert (new_run.info.lifecycle_stage, new_run.data.params["batch_size"]) == ("active", "128")
    assert [r["id"] for r in engine.resources() if r["name"] == "distilbert-sst2"] == [new_id]
    assert replace.outputs["results"]["distilbert-sst2"] == {"accuracy": 0.911, "f1": 0.907}

    # appended metric point: an update that logs only the new point (and the report, which lists it, again)
    _edit_evaluations(project, lambda e: e["bert-base-sst2"]["metrics"].update(precision=0.93))
    shown = engine.preview().render(diff=True).splitlines()
    assert shown[0] == "~ pulumi-python:dynamic/mlflow:ExperimentRun bert-base-sst2 update [diff: ~artifacts, ~metrics]"
    assert shown[1].startswith("      ~ artifacts.report.md.text: ") and shown[1].endswith('| precision | 0.93 |\\n"')
    assert shown[2:] == [
        '      + metrics[2]: {"key": "precision", "step": 0.0, "value": 0.93}', "Resources:", "    ~ 1 to update",
        "    2 unchanged",
    ]  # fmt: skip
    mark = proxy.mark()
    append = engine.up()
    assert [(s.name, s.op, s.diffs) for s in append.changed()] == [
        ("bert-base-sst2", "update", ("artifacts", "metrics"))
    ]
    report = Path(mlflow_client.download_artifacts(ids["bert-base-sst2"], "report.md", str(tmp_path / "dl")))
    assert report.read_text().endswith("| precision | 0.93 |\n"), "the report was uploaded again"
    writes = proxy.writes_since(mark)
    # A server that proxies artifacts (mlflow-artifacts: roots) gets the report through this proxy too; one
    # with a local root (the sqlite profile) has it written straight to its folder.
    uploads = [r for r in writes if "/mlflow-artifacts/" in r.path]
    proxied = mlflow_client.get_run(ids["bert-base-sst2"]).info.artifact_uri.startswith("mlflow-artifacts:")
    assert [r.path.rsplit("/", 1)[-1] for r in uploads] == (["report.md"] if proxied else [])
    (write,) = [r for r in writes if r not in uploads]
    assert write.endpoint == "runs/log-batch"
    assert [(m["key"], m["value"]) for m in write.body["metrics"]] == [("precision", 0.93)]
    for key, value in {"accuracy": 0.924, "f1": 0.921, "precision": 0.93}.items():
        history = mlflow_client.get_metric_history(ids["bert-base-sst2"], key)
        assert [(p.step, p.value) for p in history] == [(0, value)], key
    assert append.outputs["results"]["bert-base-sst2"] == {"accuracy": 0.924, "f1": 0.921, "precision": 0.93}
    mark = proxy.mark()
    assert engine.up().counts() == {"same": 3}
    assert proxy.writes_since(mark) == []

    destroy = engine.destroy()
    assert {s.name for s in destroy.steps} == names
    assert destroy.steps[-1].name == "evaluations", "the experiment goes last: the runs depend on it"
    _assert_destroyed(mlflow_client, experiment_id, {ids["bert-base-sst2"], old_id, new_id}, destroy)


# ---- small programs written here -----------------------------------------------------------------------


def _program(experiment_name: str, runs: Mapping[str, Mapping[str, Any]]) -> Callable[[], None]:
    """One experiment and the given runs (``{name: ExperimentRun kwargs}``); exports each run's id."""

    def program() -> None:
        experiment = Experiment("experiment", name=experiment_name)
        pulumi.export("experiment_id", experiment.experiment_id)
        for name, kwargs in runs.items():
            run = ExperimentRun(name, experiment_id=experiment.experiment_id, **kwargs)
            pulumi.export(f"{name}_id", run.run_id)
            pulumi.export(f"{name}_experiment_id", run.experiment_id)

    return program


def _curve(key: str, values: list[float]) -> list[dict[str, Any]]:
    return [{"key": key, "value": v, "step": i} for i, v in enumerate(values)]


@pytest.mark.mlflow2
def test_inline_program_append_points_tag_removal_and_dropped_resource(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("inline")
    state = tmp_path / "state.json"
    base = {"run_name": "curve", "params": {"lr": 0.1}, "tags": {"team": "a", "temp": "x"}}
    first = {"curve": {**base, "metrics": _curve("loss", [0.9, 0.7, 0.5])}, "scratch": {"params": {"n": 1}}}
    up = Engine(_program(name, first), state, host_env).up()
    assert up.ops() == {"experiment": "create", "curve": "create", "scratch": "create"}
    curve_id, scratch_id = up.outputs["curve_id"], up.outputs["scratch_id"]
    assert up.outputs["curve_experiment_id"] == up.outputs["experiment_id"]
    logged = {p.step: p.timestamp for p in mlflow_client.get_metric_history(curve_id, "loss")}

    # appending two points: one update, one request carrying exactly the two new points
    second = {**first, "curve": {**base, "metrics": _curve("loss", [0.9, 0.7, 0.5, 0.4, 0.35])}}
    preview = Engine(_program(name, second), state, host_env).preview()
    assert [(s.name, s.op, s.diffs) for s in preview.changed()] == [("curve", "update", ("metrics",))]
    # as the engine does for a provider without preview support: an updated resource's outputs are its inputs
    assert (preview.outputs["curve_id"], preview.outputs["scratch_id"]) == (UNKNOWN, scratch_id)
    mark = proxy.mark()
    append = Engine(_program(name, second), state, host_env).up()
    assert [(s.name, s.op) for s in append.changed()] == [("curve", "update")]
    (write,) = proxy.writes_since(mark)
    assert [(m["step"], m["value"]) for m in write.body["metrics"]] == [(3, 0.4), (4, 0.35)]
    history = mlflow_client.get_metric_history(curve_id, "loss")
    assert sorted((p.step, p.value) for p in history) == list(enumerate([0.9, 0.7, 0.5, 0.4, 0.35]))
    assert {p.step: p.timestamp for p in history if p.step < 3} == logged, "old points are not logged again"
    mark = proxy.mark()
    assert Engine(_program(name, second), state, host_env).up().counts() == {"same": 3}
    assert proxy.writes_since(mark) == []

    # a tag dropped from the program is deleted on the server; a run dropped from the program is deleted
    third = {"curve": {**base, "tags": {"team": "a"}, "metrics": second["curve"]["metrics"]}}
    mark = proxy.mark()
    result = Engine(_program(name, third), state, host_env).up()
    assert {s.name: (s.op, s.diffs) for s in result.changed()} == {
        "curve": ("update", ("tags",)), "scratch": ("delete", ()),
    }  # fmt: skip
    assert sorted((w.endpoint, w.run_id) for w in proxy.writes_since(mark)) == [
        ("runs/delete", scratch_id), ("runs/delete-tag", curve_id),
    ]  # fmt: skip
    curve = mlflow_client.get_run(curve_id)
    assert "temp" not in curve.data.tags and curve.data.tags["team"] == "a"
    assert mlflow_client.get_run(scratch_id).info.lifecycle_stage == "deleted"
    assert [r["name"] for r in Engine(_program(name, third), state, host_env).resources()] == ["experiment", "curve"]

    destroy = Engine(_program(name, third), state, host_env).destroy()
    _assert_destroyed(mlflow_client, up.outputs["experiment_id"], {curve_id, scratch_id}, destroy)


@pytest.mark.mlflow2
def test_inline_program_param_edit_replaces_and_drift_deleted_run_is_restored(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    name = unique("inline")
    state = tmp_path / "state.json"
    runs = {"train": {"params": {"lr": "0.1"}, "tags": {"owner": "me"}, "status": "FINISHED"}}
    engine = Engine(_program(name, runs), state, host_env)
    up = engine.up()
    old_id = up.outputs["train_id"]

    # a param edit replaces: create the new run, then delete the old one
    engine.program = _program(name, {"train": {**runs["train"], "params": {"lr": "0.2"}}})
    mark = proxy.mark()
    preview = engine.preview()
    assert [(s.name, s.op, s.replaces) for s in preview.changed()] == [("train", "replace", ("params",))]
    assert preview.outputs["train_id"] == UNKNOWN, "the replacement's id is not known in preview"
    assert proxy.since(mark) == []
    replace = engine.up()
    new_id = replace.outputs["train_id"]
    assert new_id != old_id
    wire = [(w.endpoint, w.run_id) for w in proxy.writes_since(mark)]
    assert wire[0][0] == "runs/create" and wire[-1] == ("runs/delete", old_id)
    assert mlflow_client.get_run(new_id).data.params == {"lr": "0.2"}
    assert mlflow_client.get_run(old_id).info.lifecycle_stage == "deleted"

    # drift: the run deleted out of band; refresh sees it; up restores the same run (no new run)
    mlflow_client.delete_run(new_id)
    mark = proxy.mark()
    refresh = engine.refresh()
    assert refresh.ops() == {"experiment": "same", "train": "refresh-changed"}
    assert refresh.step("train").new["lifecycle_stage"] == "deleted"
    heal = engine.up()
    assert [(s.name, s.op, s.id) for s in heal.changed()] == [("train", "update", new_id)]
    assert [(w.endpoint, w.run_id) for w in proxy.writes_since(mark)] == [("runs/restore", new_id)]
    assert mlflow_client.get_run(new_id).info.lifecycle_stage == "active"

    destroy = engine.destroy()
    _assert_destroyed(mlflow_client, up.outputs["experiment_id"], {old_id, new_id}, destroy)


def test_failing_check_stops_before_any_request_and_keeps_state(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy
) -> None:
    state = tmp_path / "state.json"
    program = _program(unique("inline"), {"bad": {"status": "DONE", "tags": {"../x": "y"}}})
    mark = proxy.mark()
    with pytest.raises(EngineError) as info:
        Engine(program, state, host_env).preview()
    message = str(info.value)
    assert "status: must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED" in message
    assert "DONE" not in message, "a failure never repeats the input's value (it may be a secret)"
    assert "tags.../x" in message
    with pytest.raises(EngineError):
        Engine(program, state, host_env).up()
    # the experiment may have been created before the run failed its check; the run itself was never sent
    assert "runs/create" not in endpoints(proxy.since(mark))
    created = Engine(program, state, host_env).resources()
    assert [r["name"] for r in created] in ([], ["experiment"])
    Engine(program, state, host_env).destroy()


@pytest.mark.mlflow2
def test_get_reads_an_existing_run_and_never_deletes_it(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    outside = mlflow_client.create_run(experiment_id, run_name="made-elsewhere").info.run_id
    mlflow_client.log_param(outside, "seed", "7")

    def reads_it() -> None:
        run = ExperimentRun.get("elsewhere", outside)
        pulumi.export("run_name", run.run_name)
        pulumi.export("params", run.params)

    engine = Engine(reads_it, tmp_path / "state.json", host_env)
    mark = proxy.mark()
    preview = engine.preview()
    assert preview.ops() == {"elsewhere": "read"}
    assert preview.outputs == {"run_name": "made-elsewhere", "params": {"seed": "7"}}, "a read is real in preview"
    up = engine.up()
    assert (up.ops(), up.outputs) == ({"elsewhere": "read"}, preview.outputs)
    assert [r["external"] for r in engine.resources()] == [True]

    engine.program = lambda: None
    dropped = engine.up()
    assert dropped.ops() == {"elsewhere": "discard"}
    assert engine.resources() == []
    assert proxy.writes_since(mark) == []
    assert mlflow_client.get_run(outside).info.lifecycle_stage == "active"

"""``metrics_file`` through the dynamic door under the engine stand-in, against the real server: a curve read from
the file a training job writes, appended to, cut short, altered; the state never holds its points."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
import pytest

from pulumi_mlflow_runs import Experiment, ExperimentRun
from pulumi_mlflow_runs.core import metrics_file as mf

from support.engine import Engine, EngineError
from support.fault_proxy import Fault, FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture
def host_env(mlflow_env: str, proxy: RecordingProxy) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": proxy.url}


def _program(experiment_name: str, path: Path, **kwargs: Any) -> Callable[[], None]:
    def program() -> None:
        experiment = Experiment("experiment", name=experiment_name)
        run = ExperimentRun(
            "train", experiment_id=experiment.experiment_id, metrics_file=pulumi.FileAsset(str(path)), **kwargs
        )
        pulumi.export("run_id", run.run_id)
        pulumi.export("logged", run.metrics_file_logged)
        pulumi.export("latest", run.latest_metrics)

    return program


def _write(path: Path, rows: list[tuple[str, float, int, int | None]], *, tail: str = "") -> None:
    lines = ["key,value,step,timestamp"] + [f"{k},{v},{s},{'' if t is None else t}" for k, v, s, t in rows]
    path.write_text("\n".join(lines) + "\n" + tail)


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float, int]]:
    return sorted((p.step, p.value, p.timestamp) for p in client.get_metric_history(run_id, key))


def _state_entry(engine: Engine, name: str) -> dict[str, Any]:
    (entry,) = [r for r in engine.resources() if r["name"] == name]
    return entry


@pytest.mark.mlflow2
def test_a_curve_from_a_file_appended_cut_short_and_altered(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy, mlflow_client: MlflowClient
) -> None:
    path = tmp_path / "train.csv"
    rows = [("loss", 1.0 - i / 100, i, 1_700_000_000_000 + i) for i in range(1500)]
    rows += [("acc", i / 10, i, None) for i in range(3)]  # no timestamp: they get the append's
    _write(path, rows)
    engine = Engine(_program(unique("file"), path, params={"lr": "0.1"}), tmp_path / "state.json", host_env)

    preview = engine.preview()
    assert preview.step("train").op == "create"
    assert preview.step("train").new[mf.SUMMARY]["points"] == {"acc": 3, "loss": 1500}
    up = engine.up()
    run_id = up.outputs["run_id"]
    assert len(mlflow_client.get_metric_history(run_id, "loss")) == 1500
    acc = _history(mlflow_client, run_id, "acc")
    assert len({t for _, _, t in acc}) == 1, "the rows without a timestamp share the one of their append"
    assert up.outputs["logged"]["rows"] == 1503
    entry = json.dumps(_state_entry(engine, "train"))
    assert len(entry) < 4000, "the state keeps no point of the file"
    mark = proxy.mark()
    assert engine.up().counts() == {"same": 2} and proxy.writes_since(mark) == []

    # rows appended (and a last line still being written): an update that logs only them
    _write(path, [*rows, ("loss", 0.1, 1500, 1_700_000_001_500), ("acc", 0.9, 3, None)], tail="loss,0.05,15")
    preview = engine.preview()
    assert [(s.name, s.op) for s in preview.changed()] == [("train", "update")]
    assert preview.step("train").new[mf.SUMMARY]["points"] == {"acc": 4, "loss": 1501}
    mark = proxy.mark()
    engine.up()
    (batch,) = [w for w in proxy.writes_since(mark) if w.endpoint == "runs/log-batch"]
    assert [(m["key"], m["step"]) for m in batch.body["metrics"]] == [("loss", 1500), ("acc", 3)]
    assert len(mlflow_client.get_metric_history(run_id, "loss")) == 1501

    # a logged row altered: a replace, and the new run holds the file as it is now
    text = path.read_text().replace("loss,0.99,1,", "loss,0.42,1,")
    path.write_text(text + "1501,1\n")  # completes the waiting row: loss,0.05,151501 at step 1
    preview = engine.preview()
    assert [(s.name, s.op, s.replaces) for s in preview.changed()] == [("train", "replace", ("metrics_file",))]
    replaced = engine.up()
    new_id = replaced.outputs["run_id"]
    assert new_id != run_id and mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert (1, 0.42) in {(s, v) for s, v, _ in _history(mlflow_client, new_id, "loss")}
    engine.destroy()


@pytest.mark.mlflow2
def test_an_append_cut_short_resumes_where_it_stopped_without_logging_a_row_twice(
    tmp_path: Path, mlflow_env: str, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    env = {"MLFLOW_TRACKING_URI": fault_proxy.url, "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE": "2"}
    path = tmp_path / "train.csv"
    rows = [("loss", float(i), i, None) for i in range(10)]
    _write(path, rows)
    engine = Engine(_program(unique("file"), path), tmp_path / "state.json", env)
    run_id = engine.up().outputs["run_id"]
    more = [("loss", float(i), i, None) for i in range(10, 2600)]  # three batches, no timestamps
    _write(path, rows + more)
    # the append's second log-batch fails for good: the update fails, the state keeps the old position
    fault_proxy.fail("runs/log-batch", "500", nth=2, times=1000)
    with pytest.raises(EngineError):
        engine.up()
    logged = len(mlflow_client.get_metric_history(run_id, "loss"))
    assert logged == 10 + mf.BATCH_ROWS, "the first batch of the append reached the server"
    fault_proxy.clear()
    # a refresh takes in what the progress tag says is logged
    engine.refresh()
    assert _state_entry(engine, "train")["outputs"][mf.LOGGED]["rows"] == logged
    engine.up()
    sent = [m for w in fault_proxy.requests if w.endpoint == "runs/log-batch" for m in w.body["metrics"]]
    assert [m["step"] for m in sent] == list(range(logged, 2600)), "only what is missing is sent"
    history = mlflow_client.get_metric_history(run_id, "loss")
    assert sorted(p.step for p in history) == list(range(2600)), "every row once"
    assert len({p.timestamp for p in history if p.step >= 10}) == 1, "the append kept its timestamp"
    assert set(all_runs(mlflow_client, mlflow_client.get_run(run_id).info.experiment_id)) == {run_id}
    engine.destroy()


@pytest.mark.parametrize("fault", ["drop-after", "500-after"])
def test_a_file_batch_whose_answer_is_lost_is_logged_once(
    tmp_path: Path, mlflow_env: str, fault_proxy: FaultProxy, mlflow_client: MlflowClient, fault: Fault
) -> None:
    """The server logged the create's second batch of file rows, and its answer was lost: the provider asks the
    server what it holds and sends only the rest (the progress tag), so each row is on the run once."""
    env = {"MLFLOW_TRACKING_URI": fault_proxy.url}
    path = tmp_path / "train.csv"
    rows = [("loss", i / 7, i, 1_000 + i) for i in range(2_500)]  # three batches
    _write(path, rows)
    engine = Engine(_program(unique("file"), path), tmp_path / "state.json", env)
    fault_proxy.fail("runs/log-batch", fault, nth=2)
    outputs = engine.up().outputs
    assert fault_proxy.fired() == 1
    assert _history(mlflow_client, outputs["run_id"], "loss") == [(s, v, t) for _, v, s, t in rows], "each row once"
    assert outputs["logged"]["rows"] == 2_500
    batches = [w.body for w in fault_proxy.requests if w.endpoint == "runs/log-batch"]
    again = batches[2]  # the second batch's retry
    assert "metrics" not in again and [t["key"] for t in again["tags"]] == [mf.PROGRESS_TAG], again
    assert set(all_runs(mlflow_client, mlflow_client.get_run(outputs["run_id"]).info.experiment_id)) == {
        outputs["run_id"]
    }
    engine.destroy()


def test_a_bad_file_fails_the_preview_naming_the_line_and_nothing_is_made(
    tmp_path: Path, host_env: dict[str, str], proxy: RecordingProxy
) -> None:
    path = tmp_path / "train.csv"
    path.write_text("key,value,step\nloss,0.5,0\nloss,oops,1\n")
    mark = proxy.mark()
    with pytest.raises(EngineError) as info:
        Engine(_program(unique("file"), path), tmp_path / "state.json", host_env).up()
    assert f"metrics_file: {path}, line 3, column 2 (value): must be a number" in str(info.value)
    assert [w.endpoint for w in proxy.writes_since(mark)] in ([], ["experiments/create"])

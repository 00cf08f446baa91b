"""A create that reads nothing back: the outputs it builds from what it sent are the outputs a ``runs/get`` of the
run gives, on the real server (MLflow 3 and 2.22), and the run is read back where the server may have stored
something otherwise than sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from pulumi_mlflow_runs.core import run_apply, state_seen
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.run_lifecycle import checked_inputs, create, now_ms
from pulumi_mlflow_runs.core.run_plan import outputs_for

from support.mlflow_proxy import RecordingProxy
from support.runs import core_api, endpoints, unique

pytestmark = pytest.mark.mlflow2
T0 = 1_700_000_000_000


@pytest.fixture
def api(proxy: RecordingProxy) -> Iterator[MlflowApi]:
    with core_api(proxy.url) as made:
        yield made


def _create(api: MlflowApi, experiment_id: str, **props: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    run_apply.forget_searches()
    state_seen.forget()
    inputs = checked_inputs({"experiment_id": experiment_id, "resource_key": unique("key"), **props})
    run_id, outputs = create(api, inputs, now_ms(), state_runs=None)
    return run_id, outputs, inputs


def _as_read(api: MlflowApi, run_id: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs the create would have returned had it read the run back."""
    return outputs_for(inputs, api.get_run(run_id), outputs.get("artifact_files"))


# Latest points by MLflow's rule: the greatest (step, timestamp, value); a point of a smaller step logged later
# does not win, nor does an equal one; of one step and time, the greater value.
CURVE = [
    {"key": "loss", "value": 0.9, "step": 0, "timestamp": T0 + 5},
    {"key": "loss", "value": 0.5, "step": 3, "timestamp": T0 + 1},
    {"key": "loss", "value": 0.7, "step": 1, "timestamp": T0 + 9},
    {"key": "acc", "value": 0.2, "step": 2, "timestamp": T0 + 3},
    {"key": "acc", "value": 0.1, "step": 2, "timestamp": T0 + 4},
    {"key": "f1", "value": 0.3, "step": 7, "timestamp": T0},
    {"key": "f1", "value": 0.6, "step": 7, "timestamp": T0},
    {"key": "lr", "value": 1, "step": 0},
]


@pytest.mark.parametrize("named", [True, False], ids=["named", "server-named"])
def test_outputs_built_from_what_was_sent_are_the_runs_own(
    api: MlflowApi, proxy: RecordingProxy, experiment_id: str, named: bool
) -> None:
    props = {"params": {"lr": "0.1", "layers": "4"}, "tags": {"team": "evals", "stage": "dev"}, "metrics": CURVE}
    props.update(status="FINISHED", description="a note", **({"run_name": unique("run")} if named else {}))
    mark = proxy.mark()
    run_id, outputs, inputs = _create(api, experiment_id, **props)
    sent = endpoints(proxy.since(mark))
    assert "runs/get" not in sent, sent
    assert sent.count("runs/log-batch") == 1 and sent.count("runs/update") == 1, sent
    assert outputs == _as_read(api, run_id, inputs, outputs)
    assert outputs["latest_metrics"] == {"loss": 0.5, "acc": 0.1, "f1": 0.6, "lr": 1.0}


def test_a_file_curve_with_params_and_tags_in_its_last_request(
    api: MlflowApi, proxy: RecordingProxy, experiment_id: str, tmp_path: Path
) -> None:
    rows = [f"{k},{(i % 97) / 97},{i // 2},{T0 + i % 13}" for i in range(2_100) for k in ("loss",)]
    rows += ["acc,0.5,3,", "acc,0.25,3,"]  # no timestamp: both get the create's, the greater value is latest
    path = tmp_path / "curve.csv"
    path.write_text("key,value,step,timestamp\n" + "\n".join(rows) + "\n")
    mark = proxy.mark()
    run_id, outputs, inputs = _create(
        api,
        experiment_id,
        metrics_file=pulumi.FileAsset(str(path)),
        params={"lr": "0.1"},
        tags={"team": "evals"},
        metrics=[{"key": "val", "value": 2.0, "step": 1}],
        status="FINISHED",
    )
    sent = endpoints(proxy.since(mark))
    # 2,102 rows: three log-batches of rows (999 and the progress tag each), the third carrying the params, the
    # tags, the inline point and the completion mark; no runs/get.
    assert sent.count("runs/log-batch") == 3 and "runs/get" not in sent, sent
    assert outputs == _as_read(api, run_id, inputs, outputs)
    assert outputs["metrics_file_logged"]["rows"] == 2_102
    run = api.get_run(run_id)
    assert {t.key: t.value for t in run.data.tags}["pulumi.resource_key"] == inputs["resource_key"]
    assert {p.key: p.value for p in run.data.params} == {"lr": "0.1"}
    assert len(api.get_metric_history(run_id, "loss")) == 2_100


@pytest.mark.parametrize(
    "props",
    [
        pytest.param({"params": {"long": "x" * 300}}, id="a value a server may cut"),
        pytest.param({"metrics": [{"key": "loss", "value": float("nan"), "step": 0}]}, id="a non-finite point"),
        pytest.param(
            {"dataset_inputs": [{"dataset": {"name": "d", "digest": "1", "source_type": "local", "source": "s"}}]},
            id="a dataset input",
        ),
    ],
)
def test_the_run_is_read_back_where_the_server_may_store_otherwise(
    api: MlflowApi, proxy: RecordingProxy, experiment_id: str, props: dict[str, Any]
) -> None:
    mark = proxy.mark()
    run_id, outputs, inputs = _create(api, experiment_id, status="FINISHED", **props)
    assert endpoints(proxy.since(mark)).count("runs/get") == 1
    assert outputs == _as_read(api, run_id, inputs, outputs)

"""ExperimentRun through the real provider host (``python -m pulumi.dynamic``), as the engine drives it.

Every behaviour is checked on the real MLflow server with MLflow's own client: what the provider says it
did must be what the server holds.
"""

from __future__ import annotations

import base64
import math
import sys
import uuid
from collections.abc import Iterator

import dill
import pytest
from mlflow.entities import ViewType

from pulumi_mlflow_runs import ExperimentRunProvider

from support.host import UNKNOWN, DynamicHost, HostError, isolated_env, secret, without_provider
from support.runs import create_run, run_props

pytestmark = pytest.mark.mlflow2  # each test but one check-only one creates runs

TOKEN = "dapi" + "feedface" * 4


@pytest.fixture(scope="module")
def host(mlflow_server) -> Iterator[DynamicHost]:
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)) as h:
        # A token in stack config must reach the provider, yet never its pickle, outputs or errors.
        h.configure({"databricks:token": secret(TOKEN)})
        yield h


_props = run_props
_create = create_run


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(b):  # MLflow's SQL store keeps ±Infinity as ±max double
        return a == b or a == math.copysign(sys.float_info.max, b)
    return a == b


def test_create_lands_every_value_exactly_once(host, mlflow_client, experiment_id) -> None:
    values = [0.5, -1.25, math.nan, math.inf, -math.inf, 3.0]
    run_id, outs, _ = _create(
        host, experiment_id=experiment_id, run_name="first", status="FINISHED", start_time=1_700_000_000_000,
        end_time=1_700_000_360_000, params={"lr": "0.01", "long": "v" * 400}, tags={"team": "a", "big": "t" * 3000},
        description="the first run",
        metrics=[{"key": "loss", "value": v if math.isfinite(v) else {math.nan: "NaN"}.get(v, v), "step": i,
                  "timestamp": 1_700_000_000_000 + i} for i, v in enumerate(values)],
    )
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert (run.info.start_time, run.info.end_time) == (1_700_000_000_000, 1_700_000_360_000)
    assert run.data.params == {"lr": "0.01", "long": "v" * 400}
    assert run.data.tags["team"] == "a" and run.data.tags["big"] == "t" * 3000
    assert run.data.tags["mlflow.note.content"] == "the first run"
    history = _history(mlflow_client, run_id, "loss")
    assert [s for s, _ in history] == list(range(len(values)))
    assert all(_same(got, want) for (_, got), want in zip(history, values, strict=True))
    # outputs: inputs as normalized, plus the server's view
    assert outs["run_id"] == run_id and outs["lifecycle_stage"] == "active"
    assert outs["artifact_uri"] == run.info.artifact_uri
    assert "metrics" not in outs, "the points are kept once, as logged_points"
    assert outs["logged_points"]["loss"]["value"][2:5] == ["NaN", "Infinity", "-Infinity"]
    assert outs["logged_points"]["loss"]["step"] == list(range(len(values)))
    # run keeps what only the server knows (system tags, the start time) and leaves out what the program
    # declares and what the other outputs hold (the run id, the run name, the provider's own tags)
    assert "run_id" not in outs["run"]["info"] and outs["run"]["info"]["start_time"] == run.info.start_time
    shown = {t["key"] for t in outs["run"].get("data", {}).get("tags", [])}
    assert not shown & {"team", "big", "mlflow.note.content", "mlflow.runName"}
    assert not {key for key in shown if key.startswith("pulumi.")}
    assert "params" not in outs["run"]["data"]
    assert outs["latest_metrics"]["loss"] == 3.0


def test_a_large_run_lands_whole(host, mlflow_client, experiment_id) -> None:
    metrics = [{"key": f"m{i % 20}", "value": float(i), "step": i // 20, "timestamp": 1000 + i} for i in range(2500)]
    params = {f"p{i:03d}": f"v{i}" for i in range(160)}
    tags = {f"t{i:03d}": f"w{i}" for i in range(130)}
    run_id, _, _ = _create(host, experiment_id=experiment_id, params=params, tags=tags, metrics=metrics)
    run = mlflow_client.get_run(run_id)
    assert run.data.params == params
    assert {k: v for k, v in run.data.tags.items() if k.startswith("t")} == tags
    for key in range(20):
        history = _history(mlflow_client, run_id, f"m{key}")
        assert history == [(i // 20, float(i)) for i in range(key, 2500, 20)]


def test_identical_inputs_are_no_change_and_provider_alone_is_no_change(host, experiment_id) -> None:
    run_id, outs, inputs = _create(host, experiment_id=experiment_id, tags={"a": "1"}, params={"p": "1"},
                                   metrics=[{"key": "x", "value": 1.0}], status="RUNNING")
    again = host.check(without_provider(inputs), _props(**without_provider(inputs)))
    assert host.diff(run_id, outs, again.inputs).changes == "none"
    # The same provider pickled differently (as another SDK or package version would): still no change.
    other = base64.b64encode(dill.dumps(ExperimentRunProvider(), protocol=2)).decode()
    assert other != again.inputs["__provider"]
    other_pickle = dict(again.inputs, __provider=other)
    assert host.diff(run_id, outs, other_pickle).changes == "none"


@pytest.mark.parametrize(
    ("change", "replaces"),
    [
        ({"run_name": "renamed"}, []),
        ({"status": "FAILED"}, []),
        ({"end_time": 1_700_000_999_000}, []),
        ({"tags": {"a": "2", "new": "x"}}, []),
        ({"description": "now described"}, []),
        ({"params": {"p": "1", "q": "2"}}, []),
        ({"metrics": [{"key": "x", "value": 1.0}, {"key": "x", "value": 2.0, "step": 1}]}, []),
        ({"dataset_inputs": [{"dataset": {"name": "d", "digest": "1", "source_type": "local", "source": "s"},
                              "tags": {"mlflow.data.context": "train"}}]}, []),
        pytest.param({"model_inputs": [{"model_id": "m-in"}]}, [], marks=pytest.mark.mlflow3),
        pytest.param({"model_outputs": [{"model_id": "m-out", "step": 3}]}, [], marks=pytest.mark.mlflow3),
        ({"params": {"p": "changed"}}, ["params"]),
        ({"metrics": [{"key": "x", "value": 5.0}]}, ["metrics"]),
        ({"start_time": 1_600_000_000_000}, ["start_time"]),
        ({"experiment_id": "OTHER"}, ["experiment_id"]),
        ({"host": "https://dbc-1.cloud.databricks.com"}, ["host"]),
        ({"deployment_name": "dbc-2"}, ["deployment_name"]),
    ],
)
def test_each_input_row_updates_or_replaces_as_the_spec_says(
    host, mlflow_client, experiment_id, change, replaces
) -> None:
    base = {"experiment_id": experiment_id, "run_name": "r", "status": "RUNNING", "start_time": 1_700_000_000_000,
            "tags": {"a": "1"}, "params": {"p": "1"}, "metrics": [{"key": "x", "value": 1.0}]}
    run_id, outs, _ = _create(host, **base)
    if change.get("experiment_id") == "OTHER":
        change = {"experiment_id": mlflow_client.create_experiment(f"other-{uuid.uuid4().hex}")}
    news = host.check({}, _props(**{**base, **change}))
    assert news.failures == []
    d = host.diff(run_id, outs, news.inputs)
    assert d.changes == "some" and d.replaces == replaces and not d.delete_before_replace
    if replaces:
        return
    new_outs = host.update(run_id, outs, news.inputs)
    assert host.diff(run_id, new_outs, news.inputs).changes == "none"  # update then diff: converged
    run = mlflow_client.get_run(run_id)
    for key, value in change.items():
        if key in ("run_name", "status", "end_time"):
            assert getattr(run.info, key) == value
        elif key == "tags":
            assert {k: run.data.tags.get(k) for k in value} == value
        elif key == "description":
            assert run.data.tags["mlflow.note.content"] == value
        elif key == "params":
            assert run.data.params == value
        elif key == "metrics":
            assert _history(mlflow_client, run_id, "x") == [(0, 1.0), (1, 2.0)]  # the old point once
        elif key == "dataset_inputs":
            assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["d"]
        elif key == "model_inputs":
            assert [mi.model_id for mi in run.inputs.model_inputs] == ["m-in"]
        elif key == "model_outputs":
            assert [(x.model_id, x.step) for x in run.outputs.model_outputs] == [("m-out", 3)]


def test_a_dropped_tag_is_deleted_and_foreign_tags_are_left_alone(host, mlflow_client, experiment_id) -> None:
    run_id, outs, _ = _create(host, experiment_id=experiment_id, tags={"keep": "1", "drop": "2"})
    mlflow_client.set_tag(run_id, "colleague", "theirs")
    news = host.check({}, _props(experiment_id=experiment_id, tags={"keep": "1"}))
    host.update(run_id, host.read(run_id, outs).outs, news.inputs)
    tags = mlflow_client.get_run(run_id).data.tags
    assert "drop" not in tags and tags["keep"] == "1" and tags["colleague"] == "theirs"


def test_refresh_shows_an_out_of_band_tag_change_and_up_heals_it(host, mlflow_client, experiment_id) -> None:
    run_id, outs, inputs = _create(host, experiment_id=experiment_id, tags={"owner": "ml"})
    mlflow_client.set_tag(run_id, "owner", "someone-else")
    mlflow_client.set_tag(run_id, "unmanaged", "x")
    read = host.read(run_id, outs)
    assert read.id == run_id and read.outs["tags"] == {"owner": "someone-else"}
    assert read.outs["run"]["data"]["tags"]  # the server view shows every tag
    d = host.diff(run_id, read.outs, inputs)
    assert d.changes == "some" and d.replaces == []
    host.update(run_id, read.outs, inputs)
    assert mlflow_client.get_run(run_id).data.tags["owner"] == "ml"


def test_refresh_after_out_of_band_delete_and_up_restores(host, mlflow_client, experiment_id) -> None:
    run_id, outs, inputs = _create(host, experiment_id=experiment_id, params={"p": "1"})
    mlflow_client.delete_run(run_id)
    read = host.read(run_id, outs)
    assert read.id == run_id and read.outs["lifecycle_stage"] == "deleted"
    d = host.diff(run_id, read.outs, inputs)
    assert d.changes == "some" and d.replaces == []
    healed = host.update(run_id, read.outs, inputs)
    assert healed["lifecycle_stage"] == "active"
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "active"


@pytest.mark.slow
def test_a_run_that_is_gone_leaves_state(host, mlflow_server, mlflow_client, experiment_id) -> None:
    from support.purge import purge_run

    run_id, outs, inputs = _create(host, experiment_id=experiment_id, params={"p": "1"})
    purge_run(mlflow_server, mlflow_client, run_id)  # to the trash, then removed for good by `mlflow gc`
    read = host.read(run_id, outs, inputs)  # a refresh: the engine drops a resource read back without an id
    assert read.id == ""
    host.delete(run_id, outs)  # and destroying a run that is gone is success


@pytest.mark.slow
def test_an_update_of_a_run_gone_for_good_says_to_refresh(host, mlflow_server, mlflow_client, experiment_id) -> None:
    """Diff does not read the server, so a plain `up` finds the run gone only when it writes."""
    from support.purge import purge_run

    run_id, outs, _ = _create(host, experiment_id=experiment_id, params={"p": "1"})
    purge_run(mlflow_server, mlflow_client, run_id)
    news = host.check({}, _props(experiment_id=experiment_id, params={"p": "1"}, tags={"new": "tag"}))
    with pytest.raises(HostError) as info:
        host.update(run_id, outs, news.inputs)
    assert f"run {run_id} is no longer on the server" in info.value.details
    assert "`pulumi refresh` drops it from the state" in info.value.details
    assert "updated only in part" not in info.value.details, "running up again would fail the same way"


def test_delete_twice_is_fine(host, mlflow_client, experiment_id) -> None:
    run_id, outs, _ = _create(host, experiment_id=experiment_id)
    host.delete(run_id, outs)
    host.delete(run_id, outs)
    assert mlflow_client.get_run(run_id).info.lifecycle_stage == "deleted"
    host.delete("f" * 32, outs)  # never existed


def test_preview_unknowns_never_crash(host, experiment_id) -> None:
    news = _props(experiment_id=UNKNOWN, run_name=UNKNOWN, tags={"a": UNKNOWN}, metrics=UNKNOWN)
    checked = host.check({}, news, keep_unknowns=True)
    assert checked.failures == []
    run_id, outs, _ = _create(host, experiment_id=experiment_id, tags={"a": "1"})
    d = host.diff(run_id, outs, checked.inputs, keep_unknowns=True)
    assert d.changes == "some" and d.replaces == ["experiment_id"]


def test_bad_inputs_fail_check_naming_property_and_limit(host) -> None:
    checked = host.check({}, _props(experiment_id=1, status="DONE", start_time=-5, params={"p": "x" * 501},
                                    tags={"t": "y" * 70_000}, metrics=[{"key": "a" * 251, "value": 1}], bogus=1))
    reasons = dict(checked.failures)
    assert "must be a string" in reasons["experiment_id"]
    assert "RUNNING, SCHEDULED, FINISHED, FAILED, KILLED" in reasons["status"]
    assert "between 0 and" in reasons["start_time"]
    assert "501 bytes; the limit is 500 bytes" in reasons["params.p"]
    assert "the limit is 65536 bytes" in reasons["tags.t"]
    assert "the limit is 250" in reasons["metrics[0].key"]
    assert "not an input" in reasons["bogus"]


def test_a_missing_experiment_is_a_clear_error_and_leaves_nothing(host, mlflow_client) -> None:
    checked = host.check({}, _props(experiment_id="987654321", params={"p": "1"}))
    with pytest.raises(HostError) as info:
        host.create(checked.inputs)
    assert "experiment_id: experiment '987654321' does not exist" in info.value.details
    assert "_client.py" not in info.value.details  # our own frames are cut from the traceback


def test_server_side_truncation_is_refused_and_rolled_back(host, mlflow_client, experiment_id) -> None:
    # This server keeps 8,000 characters of a tag; the documented limit is 64 KB. Silent loss is an error.
    with pytest.raises(HostError) as info:
        _create(host, experiment_id=experiment_id, run_name="too-long", tags={"t": "z" * 9000})
    assert "tags.t: the server kept only 8000 of 9000 characters" in info.value.details
    assert "was deleted" in info.value.details
    left = mlflow_client.search_runs([experiment_id], "attributes.run_name = 'too-long'",
                                     run_view_type=ViewType.ACTIVE_ONLY)
    assert left == []


def test_serialized_provider_is_small_and_holds_no_credential(host, experiment_id) -> None:
    provider_b64 = _props(experiment_id=experiment_id)["__provider"]
    raw = base64.b64decode(provider_b64)
    assert len(raw) < 300, len(raw)
    assert b"pulumi_mlflow_runs" in raw and TOKEN.encode() not in raw
    _, outs, _ = _create(host, experiment_id=experiment_id)
    assert TOKEN not in repr(outs) and TOKEN not in host.stderr_text() and TOKEN not in host.stdout_text()

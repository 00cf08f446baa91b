"""The pure core: normalization, diff rules and the request plan, with no server and no host."""

from __future__ import annotations

import json
import math

import pytest

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_plan import chunk_log_batch, plan_writes
from pulumi_mlflow_runs.core.run_spec import UNKNOWN, check_inputs


def _checked(**inputs):
    out, failures = check_inputs({"experiment_id": "1", **inputs})
    assert failures == []
    return out


DATASET = {"dataset": {"name": "d1", "digest": "abc", "source_type": "local", "source": "s"}, "tags": {}}


def _points(n: int, keys: int = 1) -> list[dict]:
    return [{"key": f"m{i % keys}", "value": float(i), "step": i, "timestamp": 1000 + i} for i in range(n)]


def test_numbers_sent_as_floats_come_back_as_ints() -> None:
    out = _checked(start_time=1.7e12, end_time=1.7e12 + 5, metrics=[{"key": "a", "value": 1, "step": 3.0}])
    assert out["start_time"] == 1_700_000_000_000 and isinstance(out["start_time"], int)
    assert out["metrics"] == [{"key": "a", "value": 1.0, "step": 3}]
    assert isinstance(out["metrics"][0]["step"], int)


def test_non_finite_values_normalize_to_mlflow_strings() -> None:
    out = _checked(metrics=[{"key": "a", "value": math.nan}, {"key": "b", "value": -math.inf},
                            {"key": "c", "value": "Infinity"}])
    assert [p["value"] for p in out["metrics"]] == ["NaN", "-Infinity", "Infinity"]
    json.dumps(out, allow_nan=False)  # state stays valid JSON


def test_unknowns_pass_check_untouched() -> None:
    out, failures = check_inputs({"experiment_id": UNKNOWN, "tags": {"a": UNKNOWN}, "metrics": UNKNOWN})
    assert failures == []
    assert out["experiment_id"] == UNKNOWN and out["tags"] == {"a": UNKNOWN}


@pytest.mark.parametrize(
    ("change", "replaces", "updates"),
    [
        ({}, (), ()),
        ({"experiment_id": "2"}, ("experiment_id",), ()),
        ({"start_time": 5}, ("start_time",), ()),
        ({"host": "https://x.cloud.databricks.com"}, ("host",), ()),
        ({"deployment_name": "dbc-1"}, ("deployment_name",), ()),
        ({"run_name": "other"}, (), ("run_name",)),
        ({"end_time": 99}, (), ("end_time",)),
        ({"status": "FAILED"}, (), ("status",)),
        ({"description": "new words"}, (), ("description",)),
        ({"tags": {"a": "1", "b": "2"}}, (), ("tags",)),
        ({"tags": {}}, (), ("tags",)),
        ({"params": {"p": "1", "q": "2"}}, (), ("params",)),
        ({"params": {"p": "changed"}}, ("params",), ()),
        ({"params": {}}, ("params",), ()),
        ({"metrics": _points(3)}, (), ("metrics",)),
        ({"metrics": _points(1)}, ("metrics",), ()),
        ({"metrics": [{**_points(2)[0], "value": 9.0}, _points(2)[1]]}, ("metrics",), ()),
        ({"model_outputs": [{"model_id": "m-1", "step": 1}, {"model_id": "m-2", "step": 2}]}, (), ("model_outputs",)),
        ({"model_outputs": [{"model_id": "m-2", "step": 2}]}, ("model_outputs",), ()),
        ({"model_inputs": [{"model_id": "a"}, {"model_id": "b"}]}, (), ("model_inputs",)),
        ({"model_inputs": []}, ("model_inputs",), ()),
        # points: a logged timestamp is part of the point; order never matters; a timestamp-less one pairs
        ({"metrics": [{**_points(2)[0], "timestamp": 2000}, _points(2)[1]]}, ("metrics",), ()),
        ({"metrics": list(reversed(_points(2)))}, (), ()),
        ({"metrics": [*reversed(_points(2)), _points(3)[2]]}, (), ("metrics",)),
        ({"metrics": [{k: v for k, v in p.items() if k != "timestamp"} for p in _points(2)]}, (), ()),
        ({"metrics": [{**_points(2)[0], "step": 7}, _points(2)[1]]}, ("metrics",), ()),
        ({"metrics": [{**_points(2)[0], "key": "other"}, _points(2)[1]]}, ("metrics",), ()),
        # dataset inputs: appended is an update, removed or altered a replace, reordered nothing
        ({"dataset_inputs": [DATASET, {**DATASET, "dataset": {**DATASET["dataset"], "name": "d2"}}]}, (),
         ("dataset_inputs",)),
        ({"dataset_inputs": []}, ("dataset_inputs",), ()),
        ({"dataset_inputs": [{**DATASET, "dataset": {**DATASET["dataset"], "digest": "other"}}]},
         ("dataset_inputs",), ()),
        ({"dataset_inputs": [{**DATASET, "tags": {"mlflow.data.context": "eval"}}]}, ("dataset_inputs",), ()),
        # model outputs and inputs: an altered step is a replace, a new input anywhere in the list an update
        ({"model_outputs": [{"model_id": "m-1", "step": 2}]}, ("model_outputs",), ()),
        ({"model_inputs": [{"model_id": "b"}, {"model_id": "a"}], "model_outputs": [{"model_id": "m-1", "step": 1}]},
         (), ("model_inputs",)),
    ],
)
def test_diff_rules_follow_the_spec_table(change: dict, replaces: tuple, updates: tuple) -> None:
    base = _checked(run_name="r", start_time=1, end_time=10, status="FINISHED", description="d",
                    tags={"a": "1"}, params={"p": "1"}, metrics=_points(2), dataset_inputs=[DATASET],
                    model_outputs=[{"model_id": "m-1", "step": 1}], model_inputs=[{"model_id": "a"}])
    olds = {**base, "run_id": "r1", "lifecycle_stage": "active", "__provider": "x"}
    news = _checked(**{**{k: v for k, v in base.items() if k != "experiment_id"}, **change})
    d = diff_run(olds, {**news, "__provider": "y"})
    assert (d.replaces, d.updates) == (replaces, updates)


def test_points_without_timestamp_match_the_logged_ones() -> None:
    declared = [{"key": "loss", "value": 1.0, "step": 0}]
    logged = [{"key": "loss", "value": 1.0, "step": 0, "timestamp": 123}]
    assert not diff_run({"experiment_id": "1", "metrics": logged}, _checked(metrics=declared)).changes


def test_deleted_run_is_drift_to_heal() -> None:
    news = _checked(tags={"a": "1"})
    d = diff_run({**news, "lifecycle_stage": "deleted"}, news)
    assert d.updates == ("lifecycle_stage",) and d.replaces == ()


def test_unknown_values_in_preview() -> None:
    olds = _checked(tags={"a": "1"}, run_name="r")
    d = diff_run(olds, {**olds, "experiment_id": UNKNOWN, "tags": {"a": UNKNOWN}})
    assert d.replaces == ("experiment_id",) and d.updates == ("tags",)


def test_chunking_uses_the_fewest_requests_within_every_limit() -> None:
    params = [m.Param(key=f"p{i}", value="v") for i in range(160)]
    tags = [m.RunTag(key=f"t{i}", value="v") for i in range(130)]
    metrics = [m.Metric(key=f"k{i % 20}", value=i, timestamp=1, step=i) for i in range(2500)]
    batches = chunk_log_batch("r", metrics, params, tags)
    assert len(batches) == 3  # ceil(2790 / 1000)
    for b in batches:
        n_m, n_p, n_t = len(b.metrics or []), len(b.params or []), len(b.tags or [])
        assert n_m <= 1000 and n_p <= 100 and n_t <= 100 and n_m + n_p + n_t <= 1000
    assert [p.key for b in batches for p in b.params or []] == [p.key for p in params]
    assert [x.step for b in batches for x in b.metrics or []] == list(range(2500))


def test_chunking_respects_the_byte_limit() -> None:
    big = "é" * 250  # 500 bytes in UTF-8
    tags = [m.RunTag(key=f"t{i:03d}" + "x" * 240, value=big) for i in range(1000)]
    batches = chunk_log_batch("r", [], [], tags)
    for b in batches:
        assert len(b.model_dump_json(exclude_none=True).encode()) <= 1_000_000
    assert sum(len(b.tags or []) for b in batches) == 1000


def test_long_values_take_their_own_endpoints() -> None:
    inputs = _checked(params={"short": "s", "long": "p" * 251}, tags={"big": "t" * 5000}, description="d" * 300)
    w = plan_writes("r", {}, {**inputs, "metrics": []}, 1)
    assert [p.key for p in w.long_params] == ["long"]
    assert sorted(t.key for t in w.long_tags) == ["big", "mlflow.note.content"]
    assert [p.key for b in w.batches for p in b.params or []] == ["short"]


def test_update_plan_sends_only_what_changed() -> None:
    old = {**_checked(params={"p": "1"}, tags={"a": "1", "gone": "x"}, metrics=_points(3), status="RUNNING"),
           "lifecycle_stage": "active"}
    new = _checked(params={"p": "1", "q": "2"}, tags={"a": "1", "b": "2"}, metrics=_points(5), status="FINISHED")
    w = plan_writes("r", old, new, 777)
    assert not w.restore
    assert len(w.batches) == 1
    b = w.batches[0]
    assert [p.key for p in b.params or []] == ["q"]
    assert [t.key for t in b.tags or []] == ["b"]
    assert [x.step for x in b.metrics or []] == [3, 4]
    assert [t.key for t in w.deleted_tags] == ["gone"]
    assert w.update == m.UpdateRun(run_id="r", status="FINISHED", end_time=777)  # ends "now"


def test_nothing_to_do_plans_nothing() -> None:
    state = _checked(params={"p": "1"}, tags={"a": "1"}, metrics=_points(3), status="FINISHED")
    w = plan_writes("r", state, state, 1)
    assert (w.batches, w.long_params, w.long_tags, w.deleted_tags, w.inputs, w.outputs, w.update) == (
        [], [], [], [], None, None, None)


def test_items_added_anywhere_are_the_ones_sent() -> None:
    a, b = {"model_id": "a", "step": 1}, {"model_id": "b", "step": 2}
    old = {**_checked(model_outputs=[a], model_inputs=[{"model_id": "x"}]), "lifecycle_stage": "active"}
    new = _checked(model_outputs=[b, a], model_inputs=[{"model_id": "y"}, {"model_id": "x"}])
    assert diff_run(old, new).updates == ("model_inputs", "model_outputs")
    w = plan_writes("r", old, new, 1)
    assert w.outputs is not None and [(o.model_id, o.step) for o in w.outputs.models] == [("b", 2)]
    assert w.inputs is not None and [x.model_id for x in w.inputs.models or []] == ["y"]


def test_state_numbers_as_floats_still_match() -> None:
    old = {"experiment_id": "1", "model_outputs": [{"model_id": "a", "step": 1.0}], "lifecycle_stage": "active"}
    new = _checked(model_outputs=[{"model_id": "a", "step": 1}])
    assert not diff_run(old, new).changes
    assert plan_writes("r", old, new, 1).outputs is None


def test_the_fast_path_for_plain_points_agrees_with_the_full_check(monkeypatch) -> None:
    import random

    from pulumi_mlflow_runs.core import run_spec as _run_spec

    rng = random.Random(7)
    values = [1, 2.5, -0.0, math.nan, math.inf, "NaN", "Infinity", "x", True, None, 3.0]
    steps = [None, 0, 1.0, 2, -4, 1.5, "1", 2**63, math.nan]
    cases = []
    for _ in range(300):
        points = []
        for _ in range(rng.randint(1, 6)):
            point = {"key": rng.choice(["loss", "acc", "../x", ""]), "value": rng.choice(values)}
            if rng.random() < 0.7:
                point["step"] = rng.choice(steps)
            if rng.random() < 0.5:
                point["timestamp"] = rng.choice([5, 5.0, -1, 7.5, None, 2**40])
            if rng.random() < 0.05:
                point["unit"] = "s"
            points.append(point)
        cases.append(points)
    fast = [check_inputs({"experiment_id": "1", "metrics": c}) for c in cases]
    monkeypatch.setattr(_run_spec, "_plain_point", lambda item, good: None)
    full = [check_inputs({"experiment_id": "1", "metrics": c}) for c in cases]
    assert json.dumps(fast, default=str) == json.dumps(full, default=str)
    assert any(not failures for _, failures in fast) and any(failures for _, failures in fast)

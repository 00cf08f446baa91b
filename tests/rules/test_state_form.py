"""The ``logged_points`` columns: every field of every point comes back, whatever the engine did to it."""

from __future__ import annotations

from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.state import from_state, pack_points, unpack_points

POINTS = [
    {"key": "loss", "value": 0.5, "step": 0, "timestamp": 1000},
    {"key": "acc", "value": "NaN", "step": 0, "timestamp": 1000, "dataset_name": "eval", "dataset_digest": "d1"},
    {"key": "loss", "value": "-Infinity", "step": 1, "timestamp": 1001},
    {"key": "acc", "value": 0.25, "step": 1, "timestamp": 1001},
    {"key": "loss", "value": 0.125, "step": 2, "timestamp": 1002, "model_id": "m-1"},
]


def _by_key(points: list[dict]) -> list[dict]:
    return sorted(points, key=lambda p: (p["key"], p["step"]))


def test_columns_round_trip_every_field_and_leave_unused_columns_out() -> None:
    packed = pack_points(POINTS)
    assert packed is not None
    assert set(packed["loss"]) == {"step", "value", "timestamp", "model_id"}
    assert set(packed["acc"]) == {"step", "value", "timestamp", "dataset_name", "dataset_digest"}
    assert packed["acc"]["dataset_digest"] == ["d1", None]
    assert _by_key(unpack_points(packed) or []) == _by_key(POINTS)
    assert pack_points(None) is None and unpack_points(None) is None


def test_state_as_the_engine_returns_it_diffs_as_no_change() -> None:
    """Numbers come back from the engine as floats and keys in its own order."""
    packed = pack_points(POINTS) or {}
    engine = {
        key: {name: [float(c) if isinstance(c, int) else c for c in cells] for name, cells in reversed(cols.items())}
        for key, cols in sorted(packed.items())
    }
    olds = from_state({"experiment_id": "1", "logged_points": engine, "lifecycle_stage": "active"})
    assert "logged_points" not in olds
    assert not diff_run(olds, {"experiment_id": "1", "metrics": POINTS}).changes
    moved = [dict(p) for p in POINTS]
    moved[3]["timestamp"] = 2001
    assert diff_run(olds, {"experiment_id": "1", "metrics": moved}).replaces == ("metrics",)


def test_the_older_list_form_is_read_as_it_is() -> None:
    olds = from_state({"experiment_id": "1", "metrics": POINTS})
    assert olds["metrics"] == POINTS
    assert not diff_run(olds, {"experiment_id": "1", "metrics": POINTS}).changes

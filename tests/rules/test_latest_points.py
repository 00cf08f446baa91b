"""``core.created_run.LatestPoints``: each key's latest point by MLflow's rule, however the points are batched and
however many keys a batch holds (its fast paths against the rule itself). The rule against a real server:
tests/lifecycle/test_created_run.py."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.created_run import LatestPoints

POINTS = st.lists(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from("abcdefg"),
            "value": st.sampled_from([0.0, 0.5, 1.0, -2.0]),
            "step": st.integers(0, 3),
            "timestamp": st.integers(0, 3),
        }
    ),
    max_size=60,
)


@given(points=POINTS, size=st.integers(1, 25))
def test_the_latest_point_of_each_key_is_the_greatest_step_time_and_value(points: list, size: int) -> None:
    latest = LatestPoints()
    for start in range(0, len(points), size):
        latest.note_wire(points[start : start + size])
    wanted: dict[str, tuple[int, int, float]] = {}
    for p in points:  # MLflow's rule, a point at a time: a later point replaces only a smaller one
        ident = (p["step"], p["timestamp"], p["value"])
        if p["key"] not in wanted or ident > wanted[p["key"]]:
            wanted[p["key"]] = ident
    assert latest.known
    assert {x.key: (x.step, x.timestamp, x.value) for x in latest.metrics()} == wanted


def test_a_point_the_server_may_store_otherwise_makes_the_run_read_back() -> None:
    for wire in ({"key": "a", "value": "NaN", "step": 0, "timestamp": 1},
                 {"key": "a", "value": 1.0, "step": 0, "timestamp": 1, "model_id": "m-1"}):  # fmt: skip
        latest = LatestPoints()
        latest.note_wire([{"key": "b", "value": 1.0, "step": 0, "timestamp": 1}, wire])
        assert not latest.known, wire
    odd = (m.Metric(key="a", value=math.inf, timestamp=1), m.Metric(key="a", value=1.0, timestamp=1, dataset_name="d"))
    for model in odd:
        latest = LatestPoints()
        latest.note_models([model])
        assert not latest.known, model
    finite = LatestPoints()
    finite.note_models([m.Metric(key="a", value=2.0, timestamp=1, step=3)])
    assert finite.known and [(x.key, x.step, x.value) for x in finite.metrics()] == [("a", 3, 2.0)]

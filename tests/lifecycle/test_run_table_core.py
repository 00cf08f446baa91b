"""A RunTable through the core (``core.run_table``) against a real MLflow server: runs written in parallel, each
once; an edit, a removal or a replace touches only that entry's run; a partial failure is recorded so the next
apply finishes only what is missing; a refresh reads the runs in searches of a hundred.

Each apply plays one ``up`` of a fresh provider process (``_fresh_up``): the per-process memory of the runs seen
is forgotten, as it is when the engine starts the plugin again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pulumi_mlflow_runs.core import run_apply, state_seen
from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.run_lifecycle import now_ms
from pulumi_mlflow_runs.core.run_table import Applied, TableFailed, apply_table, refresh_table, run_ids
from pulumi_mlflow_runs.core.table_diff import diff_table
from pulumi_mlflow_runs.core.table_keys import run_key
from pulumi_mlflow_runs.core.table_spec import check_table
from pulumi_mlflow_runs.core.transport import TransportPool

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
TAG = "pulumi.resource_key"


@pytest.fixture
def pool() -> Iterator[TransportPool]:
    pool = TransportPool(policy=RetryPolicy(deadline=1.5, initial_backoff=0.05, max_backoff=0.2))
    try:
        yield pool
    finally:
        pool.close()


def _api(pool: TransportPool, url: str) -> MlflowApi:
    return MlflowApi(pool.get(Connection(url, "test", False)))


def _fresh_up() -> None:
    """What a new plugin process starts with: no memory of earlier ``up``s."""
    run_apply.forget_searches()
    state_seen.forget()


def _entry(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "params": {"model": f"m{i % 3}", "seed": str(i)},
        "tags": {"team": "evals"},
        "status": "FINISHED",
        "metrics": [{"key": "acc", "value": 0.5 + i / 1000, "step": s} for s in range(3)],
        **extra,
    }


def _table(experiment_id: str, runs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"experiment_id": experiment_id, "runs": runs, **extra}


def _up(api: MlflowApi, raw: dict[str, Any], state: dict[str, Any], key: str, **kw: Any) -> Applied:
    _fresh_up()
    inputs, failures = check_table(raw)
    assert failures == []
    return apply_table(api, inputs, state, key, now_ms(), **kw)


def _active(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    return {i: r for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


def _history(client: MlflowClient, run_id: str, key: str = "acc") -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


class _InFlight:
    """The most requests the api had in flight at once (an upper bound holds whatever the timing)."""

    def __init__(self, api: MlflowApi) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()
        call = api.transport.call

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return call(*args, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        api.transport.call = counted  # type: ignore[method-assign]


def test_fifty_runs_are_made_in_parallel_each_once(
    pool: TransportPool, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api = _api(pool, proxy.url)
    flight = _InFlight(api)
    key = unique("table").replace("-", "")
    runs = {f"eval-{i:02d}": _entry(i) for i in range(50)}
    runs["eval-07"]["run_name"] = "eval-03"  # a name another entry's run has: MLflow allows it

    done = _up(api, _table(experiment_id, runs, max_parallel=3), {}, key)

    assert flight.most <= 3
    assert sum(r.endpoint == "runs/create" for r in proxy.requests) == 50
    active = _active(mlflow_client, experiment_id)
    ids = run_ids(done.state)
    assert sorted(ids) == sorted(runs) and sorted(ids.values()) == sorted(active)
    for entry, run_id in ids.items():
        run = active[run_id]
        want_name = "eval-03" if entry == "eval-07" else entry
        assert run.info.run_name == want_name and run.info.status == "FINISHED"
        assert run.data.params == runs[entry]["params"]
        assert run.data.tags["team"] == "evals" and run.data.tags[TAG] == run_key(key, entry)
        i = int(entry.split("-")[1])
        assert _history(mlflow_client, run_id) == [(s, 0.5 + i / 1000) for s in range(3)]
    inputs, _ = check_table(_table(experiment_id, runs, max_parallel=3))
    assert not diff_table(done.state, inputs).changes, "the same table again is no change"


@pytest.fixture
def five(
    pool: TransportPool, proxy: RecordingProxy, experiment_id: str
) -> tuple[MlflowApi, str, dict[str, Any], Applied]:
    api = _api(pool, proxy.url)
    key = unique("table").replace("-", "")
    runs = {k: _entry(i) for i, k in enumerate("abcde")}
    return api, key, runs, _up(api, _table(experiment_id, runs), {}, key)


def test_an_edited_entry_writes_only_its_run(five: Any, proxy: RecordingProxy, experiment_id: str) -> None:
    api, key, runs, before = five
    runs["b"]["tags"] = {"team": "evals", "reviewed_by": "alice"}
    inputs, _ = check_table(_table(experiment_id, runs))
    plan = diff_table(before.state, inputs)
    assert {k: c.action for k, c in plan.entries.items()} == {"b": "update"}
    assert plan.entries["b"].verdict.updates == ("tags",)
    mark = proxy.mark()

    after = _up(api, _table(experiment_id, runs), before.state, key)

    ids = run_ids(after.state)
    assert ids == run_ids(before.state)
    writes = proxy.writes_since(mark)
    assert writes and {r.run_id for r in writes} == {ids["b"]}, [(r.endpoint, r.run_id) for r in writes]
    assert not any(r.endpoint == "runs/search" for r in proxy.since(mark)), "no create: no search"
    assert after.state["runs"]["b"]["tags"]["reviewed_by"] == "alice"
    assert after.state["runs"]["a"] == before.state["runs"]["a"]


def test_a_removed_entry_deletes_only_its_run(
    five: Any, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api, key, runs, before = five
    gone = run_ids(before.state)["c"]
    del runs["c"]
    mark = proxy.mark()

    after = _up(api, _table(experiment_id, runs), before.state, key)

    assert sorted(run_ids(after.state)) == ["a", "b", "d", "e"]
    assert [(r.endpoint, r.run_id) for r in proxy.writes_since(mark)] == [("runs/delete", gone)]
    assert sorted(_active(mlflow_client, experiment_id)) == sorted(run_ids(after.state).values())


def test_a_replaced_entry_is_a_new_run_and_the_others_are_untouched(
    five: Any, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api, key, runs, before = five
    runs["d"]["params"] = {**runs["d"]["params"], "seed": "changed"}
    inputs, _ = check_table(_table(experiment_id, runs))
    plan = diff_table(before.state, inputs)
    assert not plan.replaces, "a replace of one run is an update of the table"
    assert {k: (c.action, c.verdict.replaces) for k, c in plan.entries.items()} == {"d": ("replace", ("params",))}
    mark = proxy.mark()

    after = _up(api, _table(experiment_id, runs), before.state, key)

    old, new = run_ids(before.state), run_ids(after.state)
    assert new["d"] != old["d"] and {k: v for k, v in new.items() if k != "d"} == {
        k: v for k, v in old.items() if k != "d"
    }
    assert {r.run_id for r in proxy.writes_since(mark) if r.run_id} <= {new["d"], old["d"]}
    assert sorted(_active(mlflow_client, experiment_id)) == sorted(new.values())
    assert mlflow_client.get_run(new["d"]).data.params["seed"] == "changed"
    assert after.state["retired"] == []


def test_a_partial_failure_is_finished_by_the_next_apply_and_nothing_is_made_twice(
    pool: TransportPool, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api = _api(pool, fault_proxy.url)
    key = unique("table").replace("-", "")
    runs = {f"k{i}": _entry(i) for i in range(8)}
    # Some creates fail at their log-batch, and the rollback of some fails too (their runs are left behind,
    # marked); one log-batch reaches the server but its answer is lost (sent exactly once all the same).
    fault_proxy.fail("runs/log-batch", "500-after", nth=1)
    fault_proxy.fail("runs/log-batch", "503", nth=3, times=1_000)
    fault_proxy.fail("runs/delete", "503", nth=2, times=1_000)
    with pytest.raises(TableFailed) as failed:
        _up(api, _table(experiment_id, runs, max_parallel=3), {}, key)

    partial = failed.value.state
    assert failed.value.failures, "some runs failed"
    failed_keys = {what.split('"')[1] for what in failed.value.failures}
    for what in failed.value.failures:
        assert what in str(failed.value)
    recorded = partial["runs"]
    assert set(recorded) | failed_keys == set(runs)
    assert all(recorded[k].get("run") is not None for k in set(recorded) - failed_keys), "runs done are whole"
    left = {k for k in failed_keys if k in recorded}
    assert all(recorded[k]["run"] is None for k in left), "a run a failed create left is recorded unread"
    fault_proxy.clear()

    done = _up(api, _table(experiment_id, runs, max_parallel=3), partial, key)

    creates = sum(r.endpoint == "runs/create" for r in fault_proxy.requests)
    assert creates <= len(failed_keys - left), "only runs that the failure left no trace of are made again"
    active = _active(mlflow_client, experiment_id)
    ids = run_ids(done.state)
    assert sorted(ids) == sorted(runs) and sorted(ids.values()) == sorted(active), "one run per entry"
    for entry, run_id in ids.items():
        i = int(entry[1:])
        assert _history(mlflow_client, run_id) == [(s, 0.5 + i / 1000) for s in range(3)], "no point twice"
        assert active[run_id].data.tags[TAG] == run_key(key, entry), "complete, not marked unfinished"
    assert all(run["run"] is not None for run in done.state["runs"].values())


def test_runs_a_killed_apply_made_are_taken_back_or_finished(
    pool: TransportPool, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api = _api(pool, proxy.url)
    key = unique("table").replace("-", "")
    runs = {k: _entry(i) for i, k in enumerate(["x", "y", "z"])}
    _up(api, _table(experiment_id, runs), {}, key)  # its state never recorded: the engine was killed
    # A create of "w" killed after runs/create: its run is still marked unfinished.
    half = mlflow_client.create_run(experiment_id, tags={TAG: "creating:" + run_key(key, "w")}).info.run_id
    # One of a removed entry's, left unfinished too: nothing declares it, so it goes.
    stray = mlflow_client.create_run(experiment_id, tags={TAG: "creating:" + run_key(key, "gone")}).info.run_id
    runs["w"] = _entry(9)
    mark = proxy.mark()

    done = _up(api, _table(experiment_id, runs), {}, key, held=set())

    assert not any(r.endpoint == "runs/create" for r in proxy.since(mark)), "every run was there already"
    assert sum(r.endpoint == "runs/search" for r in proxy.since(mark)) <= 2, "one search for the table's runs"
    ids = run_ids(done.state)
    assert ids["w"] == half and mlflow_client.get_run(half).data.tags[TAG] == run_key(key, "w")
    assert _history(mlflow_client, half) == [(s, 0.509) for s in range(3)]
    assert sorted(_active(mlflow_client, experiment_id)) == sorted(ids.values())
    assert mlflow_client.get_run(stray).info.lifecycle_stage == "deleted"

    # A replace of "x" killed mid-create, the entry since changed back: its new run, unfinished, goes at the next
    # apply that searches (one that creates a run), and "x" keeps its run.
    again = mlflow_client.create_run(experiment_id, tags={TAG: "creating:" + run_key(key, "x")}).info.run_id
    runs["v"] = _entry(8)
    later = _up(api, _table(experiment_id, runs), done.state, key)
    assert run_ids(later.state)["x"] == ids["x"] and mlflow_client.get_run(again).info.lifecycle_stage == "deleted"
    assert sorted(_active(mlflow_client, experiment_id)) == sorted(run_ids(later.state).values())


def test_refresh_reads_the_runs_in_searches_of_a_hundred(
    pool: TransportPool, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    api = _api(pool, proxy.url)
    key = unique("table").replace("-", "")
    runs = {f"r{i:03d}": {"params": {"i": str(i)}, "tags": {"t": "1"}} for i in range(120)}
    made = _up(api, _table(experiment_id, runs, max_parallel=8), {}, key)
    ids = run_ids(made.state)
    mlflow_client.set_tag(ids["r005"], "t", "edited outside")
    mlflow_client.delete_run(ids["r006"])
    stored, _ = check_table(_table(experiment_id, runs))
    mark = proxy.mark()

    fresh = refresh_table(api, made.state, stored)

    asked = [r.endpoint for r in proxy.since(mark)]
    assert asked == ["runs/search", "runs/search"], asked
    assert fresh.state["runs"]["r005"]["tags"] == {"t": "edited outside"}
    assert fresh.inputs is not None and fresh.inputs["runs"]["r005"]["tags"] == {"t": "edited outside"}
    assert fresh.state["runs"]["r006"]["lifecycle_stage"] == "deleted"
    assert fresh.state["runs"]["r007"] == made.state["runs"]["r007"]
    plan = diff_table(fresh.state, stored)
    assert {k: c.action for k, c in plan.entries.items()} == {"r005": "update", "r006": "update"}

    restored = _up(api, _table(experiment_id, runs), fresh.state, key)

    assert mlflow_client.get_run(ids["r006"]).info.lifecycle_stage == "active"
    assert mlflow_client.get_run(ids["r005"]).data.tags["t"] == "1"
    assert run_ids(restored.state) == ids


def test_bad_entries_are_named_with_their_property_and_limit(experiment_id: str) -> None:
    raw = _table(
        experiment_id,
        {
            "ok": _entry(1),
            "bert-sst2": {"params": {"lr": 0.1}, "tags": {"pulumi.resource_key": "x"}},
            "other": {"experiment_id": "9", "status": "DONE", "colour": "red"},
            "not-an-object": 3,
        },
        max_parallel=64,
    )
    _, failures = check_table(raw)
    by_prop = {prop: reason for prop, reason in failures}
    assert set(by_prop) == {
        'runs["bert-sst2"].params.lr',
        'runs["bert-sst2"].tags.pulumi.resource_key',
        'runs["other"].experiment_id',
        'runs["other"].status',
        'runs["other"].colour',
        'runs["not-an-object"]',
        "max_parallel",
    }, failures
    assert "must be a string" in by_prop['runs["bert-sst2"].params.lr']
    assert "set it on the RunTable" in by_prop['runs["other"].experiment_id']
    assert "between 1 and 32" in by_prop["max_parallel"]
    _, none = check_table(_table(experiment_id, {}))
    assert none == []
    _, missing = check_table({"runs": {"a": {}}})
    assert [p for p, _ in missing] == ["experiment_id"]

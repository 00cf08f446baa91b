"""A failed RunTable apply on a door that cannot record a partial state (the dynamic door), through the core: the
state a failure describes (``TableFailed.state``) is thrown away, as the engine does, and the next apply starts
from what the engine has: nothing after a failed create, the old state after a failed update. The one search
per table then takes over every run the failed apply made, each exactly once, none left behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pulumi_mlflow_runs.core import run_apply, state_seen
from pulumi_mlflow_runs.core.auth import Connection
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.run_lifecycle import now_ms
from pulumi_mlflow_runs.core.run_table import Applied, TableFailed, apply_table, run_ids
from pulumi_mlflow_runs.core.table_keys import run_key
from pulumi_mlflow_runs.core.table_spec import check_table
from pulumi_mlflow_runs.core.transport import TransportPool

from support.fault_proxy import FaultProxy
from support.runs import all_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
TAG = "pulumi.resource_key"


@pytest.fixture
def api(fault_proxy: FaultProxy) -> Iterator[MlflowApi]:
    pool = TransportPool(policy=RetryPolicy(deadline=1.5, initial_backoff=0.05, max_backoff=0.2))
    try:
        yield MlflowApi(pool.get(Connection(fault_proxy.url, "test", False)))
    finally:
        pool.close()


def _entry(i: int) -> dict[str, Any]:
    return {
        "params": {"seed": str(i)},
        "status": "FINISHED",
        "metrics": [{"key": "acc", "value": i / 10, "step": s} for s in range(2)],
    }


def _up(api: MlflowApi, experiment_id: str, runs: dict[str, Any], state: dict[str, Any], key: str) -> Applied:
    """One ``up`` of a new provider process, the engine's state ``state``; held as the dynamic door tells it."""
    run_apply.forget_searches()
    state_seen.forget()
    inputs, failures = check_table({"experiment_id": experiment_id, "runs": runs, "max_parallel": 3})
    assert failures == []
    return apply_table(api, inputs, state, key, now_ms(), held=None if state else frozenset())


def _active(client: MlflowClient, experiment_id: str) -> set[str]:
    return {i for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


def _check_once(client: MlflowClient, done: Applied, key: str, experiment_id: str) -> None:
    ids = run_ids(done.state)
    assert sorted(ids.values()) == sorted(_active(client, experiment_id)), "one run per entry, nothing orphaned"
    for entry, run_id in ids.items():
        run = client.get_run(run_id)
        assert run.data.tags[TAG] == run_key(key, entry), "complete, not marked unfinished"
        steps = sorted(m.step for m in client.get_metric_history(run_id, "acc"))
        assert steps == sorted({*range(2), *(p["step"] for p in done.state["runs"][entry]["metrics"])}), entry


@pytest.mark.slow
def test_a_failed_create_whose_state_is_lost_is_taken_over(
    api: MlflowApi, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(8)}
    fault_proxy.fail("runs/log-batch", "503", nth=3, times=1_000)
    fault_proxy.fail("runs/delete", "503", nth=2, times=1_000)
    with pytest.raises(TableFailed) as failed:
        _up(api, experiment_id, runs, {}, key)
    assert failed.value.failures
    left = _active(mlflow_client, experiment_id)  # every run done, and each whose rollback failed
    fault_proxy.clear()

    done = _up(api, experiment_id, runs, {}, key)  # the engine recorded nothing

    assert sum(r.endpoint == "runs/create" for r in fault_proxy.requests) == len(runs) - len(left)
    assert left <= set(run_ids(done.state).values())
    _check_once(mlflow_client, done, key, experiment_id)


@pytest.mark.slow
def test_a_failed_update_is_finished_from_the_old_state(
    api: MlflowApi, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(4)}
    old = _up(api, experiment_id, runs, {}, key)
    runs.update({f"n{i}": _entry(10 + i) for i in range(5)})
    runs["k1"]["metrics"].append({"key": "acc", "value": 0.9, "step": 2})
    runs["k2"]["params"]["seed"] = "changed"
    del runs["k3"]
    fault_proxy.fail("runs/log-batch", "503", nth=4, times=1_000)
    fault_proxy.fail("runs/delete", "503", nth=3, times=1_000)
    with pytest.raises(TableFailed):
        _up(api, experiment_id, runs, old.state, key)
    made = _active(mlflow_client, experiment_id) - set(run_ids(old.state).values())
    fault_proxy.clear()

    done = _up(api, experiment_id, runs, old.state, key)  # the engine kept the old state

    ids, before = run_ids(done.state), run_ids(old.state)
    assert sorted(ids) == sorted(runs) and made <= set(ids.values())
    assert sum(r.endpoint == "runs/create" for r in fault_proxy.requests) <= 6 - len(made)
    assert mlflow_client.get_run(before["k3"]).info.lifecycle_stage == "deleted"
    assert mlflow_client.get_run(before["k2"]).info.lifecycle_stage == "deleted" and ids["k2"] != before["k2"]
    _check_once(mlflow_client, done, key, experiment_id)


@pytest.mark.slow
def test_runs_of_a_failed_create_are_taken_back_after_their_entries_changed(
    api: MlflowApi, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    """The program was edited between the failed ``up`` and the next: a run the failed one finished is taken back
    and updated to its entry where no replace is needed, not left behind beside a new one."""
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(6)}
    fault_proxy.fail("runs/log-batch", "503", nth=3, times=1_000)
    with pytest.raises(TableFailed):
        _up(api, experiment_id, runs, {}, key)
    by_mark = {run_key(key, entry): entry for entry in runs}
    left = {
        run_id: by_mark[mlflow_client.get_run(run_id).data.tags[TAG]]
        for run_id in _active(mlflow_client, experiment_id)
    }
    assert left, "the runs done stay on the server"
    for entry in left.values():
        runs[entry]["tags"] = {"reviewed_by": "alice"}
        runs[entry]["metrics"].append({"key": "acc", "value": 0.99, "step": 5})
    fault_proxy.clear()

    done = _up(api, experiment_id, runs, {}, key)

    ids = run_ids(done.state)
    assert {ids[entry] for entry in left.values()} == set(left), "taken back, not made again"
    assert sum(r.endpoint == "runs/create" for r in fault_proxy.requests) == len(runs) - len(left)
    for run_id in left:
        assert mlflow_client.get_run(run_id).data.tags["reviewed_by"] == "alice"
    _check_once(mlflow_client, done, key, experiment_id)

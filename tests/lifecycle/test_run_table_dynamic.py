"""RunTable on the dynamic door, through the real provider host (``python -m pulumi.dynamic``) as the engine drives
it: Check names the entry and the property, Diff and Update touch one entry's run, and, since this host cannot
report a partial failure, a failed create (the engine records nothing) or a failed update (the engine keeps the
old state) is finished by the next ``up``'s calls without a run made twice or left behind.

Each ``up`` after a failure runs in a new host process, as the engine starts one per ``up``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pulumi
import pytest

from pulumi_mlflow_runs import RunTableProvider
from pulumi_mlflow_runs.core.table_keys import run_key

from support.fault_proxy import FaultProxy
from support.host import UNKNOWN, DynamicHost, HostError, isolated_env, with_provider, without_provider
from support.runs import all_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
TAG = "pulumi.resource_key"


def _entry(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "status": "FINISHED",
        "params": {"model": f"m{i % 3}", "seed": str(i)},
        "tags": {"team": "evals"},
        "metrics": [{"key": "acc", "value": 0.5 + i / 100, "step": s} for s in range(2)],
        **extra,
    }


def _table(experiment_id: str, runs: dict[str, Any], key: str, **extra: Any) -> dict[str, Any]:
    return with_provider({"experiment_id": experiment_id, "runs": runs, "table_key": key, **extra}, RunTableProvider())


def _checked(host: DynamicHost, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    checked = host.check(without_provider(olds or {}), props)
    assert checked.failures == [], checked.failures
    return checked.inputs


def _active(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    return {i: r for i, r in all_runs(client, experiment_id).items() if r.info.lifecycle_stage == "active"}


def _steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "acc"))


@pytest.fixture
def faulty_host(mlflow_server: Any) -> Iterator[tuple[FaultProxy, Any]]:
    """A fault proxy, and a maker of hosts behind it (one per ``up``), each with a short retry deadline."""
    proxy = FaultProxy(mlflow_server.url)
    hosts: list[DynamicHost] = []

    def new_host() -> DynamicHost:
        env = isolated_env(MLFLOW_TRACKING_URI=proxy.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="2")
        host = DynamicHost(env=env)
        hosts.append(host)
        host.configure({})
        return host

    try:
        yield proxy, new_host
    finally:
        for host in hosts:
            host.close()
        proxy.close()


def test_a_table_through_the_host(host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str) -> None:
    key = uuid.uuid4().hex
    runs = {f"eval-{i}": _entry(i) for i in range(6)}
    runs["eval-5"]["tags"]["token"] = "s3cr3t"
    inputs = _checked(host, _table(experiment_id, runs, key, max_parallel=3.0))  # numbers arrive as floats
    table_id, outs = host.create(inputs)
    ids = outs["run_ids"]
    assert sorted(ids) == sorted(runs) and sorted(ids.values()) == sorted(_active(mlflow_client, experiment_id))
    for entry, run_id in ids.items():
        run = mlflow_client.get_run(run_id)
        assert run.info.run_name == entry and run.data.tags[TAG] == run_key(key, entry)
        assert _steps(mlflow_client, run_id) == [0, 1]
    assert outs["latest_metrics"]["eval-2"] == {"acc": 0.52}
    assert host.diff(table_id, outs, inputs, old_inputs=inputs).changes == "none"

    # One tag edited: the engine's own diff of the inputs shows it ("unknown"), and the update writes that run.
    runs["eval-2"]["tags"]["reviewed_by"] = "alice"
    news = _checked(host, _table(experiment_id, runs, key, max_parallel=3), inputs)
    assert host.diff(table_id, outs, news, old_inputs=inputs).changes == "unknown"
    after = host.update(table_id, outs, news, old_inputs=inputs)
    assert after["run_ids"] == ids
    assert mlflow_client.get_run(ids["eval-2"]).data.tags["reviewed_by"] == "alice"

    # A changed param replaces that run alone, as an update of the table.
    runs["eval-4"]["params"]["seed"] = "44"
    newer = _checked(host, _table(experiment_id, runs, key, max_parallel=3), news)
    diff = host.diff(table_id, after, newer, old_inputs=news)
    assert diff.changes == "unknown" and diff.replaces == []
    last = host.update(table_id, after, newer, old_inputs=news)
    assert last["run_ids"]["eval-4"] != ids["eval-4"]
    assert {k: v for k, v in last["run_ids"].items() if k != "eval-4"} == {
        k: v for k, v in ids.items() if k != "eval-4"
    }
    assert mlflow_client.get_run(ids["eval-4"]).info.lifecycle_stage == "deleted"

    # A run deleted outside: refresh marks it, and Diff says "some" (the inputs show no change).
    mlflow_client.delete_run(ids["eval-0"])
    fresh = host.read(table_id, last, newer)
    assert fresh.outs["run_states"]["eval-0"]["lifecycle_stage"] == "deleted"
    assert host.diff(table_id, fresh.outs, newer, old_inputs=newer).changes == "some"
    host.update(table_id, fresh.outs, newer, old_inputs=newer)
    assert mlflow_client.get_run(ids["eval-0"]).info.lifecycle_stage == "active"

    host.delete(table_id, last)
    assert _active(mlflow_client, experiment_id) == {}


def test_a_preview_with_unknown_inputs(host: DynamicHost, experiment_id: str) -> None:
    """An experiment still to be made, and an entry's tag from another resource's output: Check passes, and Diff
    of a known table with an unknown value in one entry says it changes."""
    runs = {"a": _entry(1), "b": _entry(2)}
    runs["b"]["tags"]["commit"] = UNKNOWN
    first = host.check({}, _table(UNKNOWN, runs, uuid.uuid4().hex), preview=True)
    assert first.failures == []
    key = uuid.uuid4().hex
    known = {"a": _entry(1), "b": _entry(2)}
    inputs = _checked(host, _table(experiment_id, known, key))
    table_id, outs = host.create(inputs)
    news = host.check(without_provider(inputs), _table(experiment_id, runs, key), preview=True)
    assert news.failures == []
    assert host.diff(table_id, outs, news.inputs, old_inputs=inputs, preview=True).changes in ("some", "unknown")
    host.delete(table_id, outs)


def test_check_names_the_entry_and_the_property(host: DynamicHost, experiment_id: str) -> None:
    runs = {
        "ok": _entry(1),
        "bert-sst2": {"params": {"lr": 0.1}, "metrics_file": "curves.csv"},
        "other": {"experiment_id": "9", "status": "DONE"},
    }
    failed = host.check({}, _table(experiment_id, runs, uuid.uuid4().hex, max_parallel=64))
    named = {prop for prop, _ in failed.failures}
    assert named == {
        'runs["bert-sst2"].params.lr',
        'runs["bert-sst2"].metrics_file',
        'runs["other"].experiment_id',
        'runs["other"].status',
        "max_parallel",
    }, failed.failures


@pytest.mark.slow
def test_a_failed_create_is_taken_over_by_the_next_up_each_run_once(
    faulty_host: tuple[FaultProxy, Any], mlflow_client: MlflowClient, experiment_id: str
) -> None:
    """The engine records nothing of a failed create: every run it finished stays on the server, marked; a run
    whose rollback failed stays marked unfinished. The next ``up`` (a new host, Check without olds, Create)
    takes each over: only the runs the failure left no trace of are made again."""
    proxy, new_host = faulty_host
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(8)}
    proxy.fail("runs/log-batch", "503", nth=3, times=1_000)
    proxy.fail("runs/delete", "503", nth=2, times=1_000)
    first = new_host()
    with pytest.raises(HostError) as failed:
        first.create(_checked(first, _table(experiment_id, runs, key, max_parallel=3)))
    named = {k for k in runs if f'runs["{k}"]' in failed.value.details}
    assert named and named < set(runs), failed.value.details
    assert "Traceback" not in failed.value.details
    survivors = _active(mlflow_client, experiment_id)
    assert survivors, "the runs done stay on the server"
    proxy.clear()

    second = new_host()
    _, outs = second.create(_checked(second, _table(experiment_id, runs, key, max_parallel=3)))

    ids = outs["run_ids"]
    creates = sum(r.endpoint == "runs/create" for r in proxy.requests)
    assert creates == len(runs) - len(survivors), "a run the failure left is taken over, not made again"
    assert set(survivors) <= set(ids.values())
    active = _active(mlflow_client, experiment_id)
    assert sorted(ids) == sorted(runs) and sorted(ids.values()) == sorted(active), "one run per entry, no orphan"
    for entry, run_id in ids.items():
        assert _steps(mlflow_client, run_id) == [0, 1], entry
        assert active[run_id].data.tags[TAG] == run_key(key, entry)


@pytest.mark.slow
def test_a_failed_update_is_finished_by_the_next_up_from_the_old_state(
    faulty_host: tuple[FaultProxy, Any], mlflow_client: MlflowClient, experiment_id: str
) -> None:
    """The engine keeps the old state after a failed update: the next ``up`` diffs and updates from it again.
    The runs the failed one made are taken back, the ones it replaced or removed stay deleted, the edits are
    not sent twice, and no run is made twice."""
    proxy, new_host = faulty_host
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(4)}
    first = new_host()
    old_inputs = _checked(first, _table(experiment_id, runs, key))
    table_id, olds = first.create(old_inputs)
    before = olds["run_ids"]

    runs.update({f"n{i}": _entry(10 + i) for i in range(5)})  # five new runs
    runs["k1"]["metrics"].append({"key": "acc", "value": 0.9, "step": 2})  # an update
    runs["k2"]["params"]["seed"] = "22"  # a replace
    del runs["k3"]  # a delete
    proxy.fail("runs/log-batch", "503", nth=4, times=1_000)
    proxy.fail("runs/delete", "503", nth=3, times=1_000)
    second = new_host()
    news = _checked(second, _table(experiment_id, runs, key), old_inputs)
    assert second.diff(table_id, olds, news, old_inputs=old_inputs).changes == "unknown"
    with pytest.raises(HostError) as failed:
        second.update(table_id, olds, news, old_inputs=old_inputs)
    assert 'runs["' in failed.value.details and "Traceback" not in failed.value.details
    made = set(_active(mlflow_client, experiment_id)) - set(before.values())
    proxy.clear()

    third = new_host()  # the next up: the same old state
    news = _checked(third, _table(experiment_id, runs, key), old_inputs)
    assert third.diff(table_id, olds, news, old_inputs=old_inputs).changes == "unknown"
    outs = third.update(table_id, olds, news, old_inputs=old_inputs)

    ids = outs["run_ids"]
    assert sorted(ids) == sorted(runs)
    assert ids["k0"] == before["k0"] and ids["k1"] == before["k1"] and ids["k2"] != before["k2"]
    assert made <= set(ids.values()), "every run the failed up made is the table's now"
    creates = sum(r.endpoint == "runs/create" for r in proxy.requests)
    assert creates <= 6 - len(made)
    active = _active(mlflow_client, experiment_id)
    assert sorted(ids.values()) == sorted(active), "one run per entry, nothing orphaned"
    assert mlflow_client.get_run(before["k3"]).info.lifecycle_stage == "deleted"
    assert mlflow_client.get_run(before["k2"]).info.lifecycle_stage == "deleted"
    assert _steps(mlflow_client, ids["k1"]) == [0, 1, 2], "the appended point once"
    for entry, run_id in ids.items():
        assert active[run_id].data.tags[TAG] == run_key(key, entry), entry
        if entry != "k1":
            assert _steps(mlflow_client, run_id) == [0, 1], entry
    assert third.diff(table_id, outs, news, old_inputs=news).changes == "none"


def test_an_entry_s_files(host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str) -> None:
    """Files of one entry land in that run's artifact root; a changed file is an update of that run alone."""
    key = uuid.uuid4().hex
    runs: dict[str, Any] = {"a": _entry(1), "b": {**_entry(2), "artifacts": {"notes.md": pulumi.StringAsset("# b\n")}}}
    inputs = _checked(host, _table(experiment_id, runs, key))
    table_id, outs = host.create(inputs)
    files = outs["run_states"]["b"]["artifact_files"]
    assert set(files) == {"notes.md"} and not outs["run_states"]["a"].get("artifact_files")
    listed = [f.path for f in mlflow_client.list_artifacts(outs["run_ids"]["b"])]
    assert listed == ["notes.md"]
    assert host.diff(table_id, outs, inputs, old_inputs=inputs).changes == "none"

    runs["b"]["artifacts"] = {"notes.md": pulumi.StringAsset("# b, edited\n")}
    news = _checked(host, _table(experiment_id, runs, key), inputs)
    assert host.diff(table_id, outs, news, old_inputs=inputs).changes == "some"
    after = host.update(table_id, outs, news, old_inputs=inputs)
    assert after["run_ids"] == outs["run_ids"]
    assert after["run_states"]["b"]["artifact_files"]["notes.md"]["sha256"] != files["notes.md"]["sha256"]
    host.delete(table_id, after)


@pytest.mark.slow
def test_a_killed_create_is_finished_by_the_next_up_each_run_once(
    faulty_host: tuple[FaultProxy, Any], mlflow_client: MlflowClient, experiment_id: str
) -> None:
    """The host dies in the middle of a table's create (a killed ``up``): the engine records nothing, and the runs
    it began or finished are finished or taken back by the next ``up``; none is made twice."""
    proxy, new_host = faulty_host
    key = uuid.uuid4().hex
    runs = {f"k{i}": _entry(i) for i in range(8)}
    first = new_host()
    inputs = _checked(first, _table(experiment_id, runs, key, max_parallel=3))
    proxy.when("runs/log-batch", first.process.kill, nth=3)  # not a create: one landing late would count
    with pytest.raises(HostError):
        first.create(inputs)
    assert len(proxy.reached_server("runs/create")) < len(runs)

    second = new_host()
    _, outs = second.create(_checked(second, _table(experiment_id, runs, key, max_parallel=3)))

    ids = outs["run_ids"]
    assert len(proxy.reached_server("runs/create")) == len(runs), "over both ups, each run made once"
    active = _active(mlflow_client, experiment_id)
    assert sorted(ids) == sorted(runs) and sorted(ids.values()) == sorted(active), "nothing orphaned"
    for entry, run_id in ids.items():
        assert _steps(mlflow_client, run_id) == [0, 1], entry
        assert active[run_id].data.tags[TAG] == run_key(key, entry)


def test_a_long_apply_reports_its_progress(host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str) -> None:
    """The host's stderr (which the engine shows) gets a line per tenth of the runs written, the last one too."""
    runs = {f"r{i:02d}": {"params": {"i": str(i)}} for i in range(50)}
    inputs = _checked(host, _table(experiment_id, runs, uuid.uuid4().hex, max_parallel=4))
    table_id, outs = host.create(inputs)
    lines = [line for line in host.stderr_text().splitlines() if line.startswith("RunTable: ") and "of 50 " in line]
    assert len(lines) == 10 and lines[-1] == "RunTable: 50 of 50 runs written", lines
    host.delete(table_id, outs)

"""``metrics_file`` in a RunTable's entries, through the core against a real MLflow server: each entry's file read
by Check into its summary (the state holds no point), sent in the create's log-batches as an ``ExperimentRun``
sends it, a grown file appended to that run alone, a rewritten one replacing that run alone, a bad file named by
the entry, the line and the column, and every row logged once under faults.

Each apply plays one ``up`` of a fresh provider process, as ``test_run_table_core`` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pulumi import FileAsset

from pulumi_mlflow_runs.core import metrics_file as mf
from pulumi_mlflow_runs.core import run_apply, state_seen
from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.retries import RetryPolicy
from pulumi_mlflow_runs.core.run_spec import check_inputs
from pulumi_mlflow_runs.core.run_table import Applied, TableFailed, apply_table, refresh_table, run_ids
from pulumi_mlflow_runs.core.table_diff import diff_table, file_replace_reason
from pulumi_mlflow_runs.core.table_spec import check_table, summaries_to_reuse

from support.fault_proxy import FaultProxy
from support.mlflow_proxy import RecordingProxy
from support.runs import all_runs, core_api, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.mlflow2
ApiOf = Callable[[str], MlflowApi]


@pytest.fixture
def api_of() -> Iterator[ApiOf]:
    """The core's client of a server (or proxy) by its URL, with retries that give up within two seconds."""
    quick = RetryPolicy(deadline=1.5, initial_backoff=0.05, max_backoff=0.2)
    with ExitStack() as clients:
        yield lambda url: clients.enter_context(core_api(url, quick))


def _write(path: Path, rows: list[tuple[str, float, int]], *, tail: str = "") -> FileAsset:
    """A training job's CSV (every row with its timestamp, so two runs of it log the same points)."""
    lines = ["key,value,step,timestamp", *(f"{k},{v},{s},{1_700_000_000_000 + s}" for k, v, s in rows)]
    path.write_text("\n".join(lines) + "\n" + tail)
    return FileAsset(str(path))


def _curve(n: int, start: int = 0) -> list[tuple[str, float, int]]:
    return [(key, round(1 / (s + 1), 6), s) for s in range(start, n) for key in ("loss", "acc")]


def _entry(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "params": {"model": f"m{i}", "lr": "0.1", "batch": "64", "epochs": "3", "seed": str(i)},
        "tags": {"team": "evals", "dataset": "sst2", "job": "train.py"},
        "status": "FINISHED",
        **extra,
    }


def _check(experiment_id: str, runs: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check as a door runs it: the files read (their old summaries kept where they still hold)."""
    news = {"experiment_id": experiment_id, "runs": runs}
    reuse = summaries_to_reuse(olds or {}, news)
    inputs, failures = check_table(news, read_files=True, reuse_summaries=reuse)
    assert failures == []
    return inputs


def _up(api: MlflowApi, inputs: dict[str, Any], state: dict[str, Any], key: str) -> Applied:
    run_apply.forget_searches()
    state_seen.forget()
    return apply_table(api, inputs, state, key, lifecycle.now_ms())


def _steps(client: MlflowClient, run_id: str, key: str = "loss") -> list[int]:
    return sorted(p.step for p in client.get_metric_history(run_id, key))


def _files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "bert.csv", tmp_path / "roberta.csv"


def test_entries_read_their_files_and_each_grows_or_is_replaced_alone(
    api_of: ApiOf, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str, tmp_path: Path
) -> None:
    api = api_of(proxy.url)
    key = unique("table").replace("-", "")
    bert, roberta = _files(tmp_path)
    runs = {
        "bert": _entry(1, metrics_file=_write(bert, _curve(100))),
        "roberta": _entry(2, metrics_file=_write(roberta, _curve(50))),
        "plain": _entry(3, metrics=[{"key": "acc", "value": 0.5, "step": 0}]),
    }
    inputs = _check(experiment_id, runs)
    assert inputs["runs"]["bert"][mf.SUMMARY]["points"] == {"acc": 100, "loss": 100}
    assert mf.SUMMARY not in inputs["runs"]["plain"]

    made = _up(api, inputs, {}, key)

    ids = run_ids(made.state)
    assert _steps(mlflow_client, ids["bert"]) == list(range(100))
    assert _steps(mlflow_client, ids["roberta"], "acc") == list(range(50))
    assert made.state["runs"]["bert"][mf.LOGGED]["rows"] == 200
    assert made.state["runs"]["bert"]["latest_metrics"] == {"acc": 0.01, "loss": 0.01}
    stored = json.dumps({k: v for k, v in made.state["runs"]["bert"].items() if k != "metrics_file"})
    assert "0.333333" not in stored and len(stored) < 2000, f"the state holds no point ({len(stored)} bytes)"
    assert not diff_table(made.state, _check(experiment_id, runs, inputs)).changes, "the same files: no change"

    # roberta's job wrote 25 more steps (and a row still being written): that run alone gets them, in one batch
    _write(roberta, _curve(75), tail="loss,0.01,75")
    grown = _check(experiment_id, runs, inputs)
    plan = diff_table(made.state, grown)
    assert {k: (c.action, c.verdict.updates) for k, c in plan.entries.items()} == {
        "roberta": ("update", ("metrics_file",))
    }
    mark = proxy.mark()
    appended = _up(api, grown, made.state, key)
    writes = proxy.writes_since(mark)
    assert [(r.endpoint, r.run_id) for r in writes] == [("runs/log-batch", ids["roberta"])]
    assert sorted({m["step"] for m in writes[0].body["metrics"]}) == list(range(50, 75)), "only the new rows"
    assert _steps(mlflow_client, ids["roberta"]) == list(range(75))
    assert run_ids(appended.state) == ids and appended.state["runs"]["bert"] == made.state["runs"]["bert"]
    assert not diff_table(appended.state, _check(experiment_id, runs, grown)).changes

    # a logged row of bert's rewritten: bert alone is replaced, its new run holds the file as it is now
    bert.write_text(bert.read_text().replace("loss,1.0,0,", "loss,2.0,0,", 1))
    rewritten = _check(experiment_id, runs, grown)
    plan = diff_table(appended.state, rewritten)
    assert {k: (c.action, c.verdict.replaces) for k, c in plan.entries.items()} == {
        "bert": ("replace", ("metrics_file",))
    }
    why = file_replace_reason("bert", appended.state, rewritten)
    assert why.startswith(f'runs["bert"]: {bert} no longer starts with the 200 rows logged from it'), why
    replaced = _up(api, rewritten, appended.state, key)
    new = run_ids(replaced.state)
    assert new["bert"] != ids["bert"] and {k: new[k] for k in ("roberta", "plain")} == {
        k: ids[k] for k in ("roberta", "plain")
    }
    assert mlflow_client.get_run(ids["bert"]).info.lifecycle_stage == "deleted"
    assert (0, 2.0) in {(p.step, p.value) for p in mlflow_client.get_metric_history(new["bert"], "loss")}
    assert _steps(mlflow_client, new["bert"]) == list(range(100))
    active = {i for i, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"}
    assert active == set(new.values()), "nothing orphaned"


def test_a_create_sends_the_file_as_an_experiment_run_does(
    api_of: ApiOf, proxy: RecordingProxy, mlflow_client: MlflowClient, experiment_id: str, tmp_path: Path
) -> None:
    """The same requests, and the same points in each log-batch, as a lone run of the same inputs: the params,
    tags and completion mark in the file's last batch, no ``runs/get``."""
    api = api_of(proxy.url)
    path = tmp_path / "train.csv"
    asset = _write(path, _curve(600))  # 1,200 rows: two log-batches
    table = _check(experiment_id, {"t": _entry(1, metrics_file=asset)})
    lone, failures = check_inputs({**_entry(1, metrics_file=asset), "experiment_id": experiment_id}, read_files=True)
    assert failures == [] and lone[mf.SUMMARY] == table["runs"]["t"][mf.SUMMARY]

    mark = proxy.mark()
    made = _up(api, table, {}, unique("table").replace("-", ""))
    in_table = proxy.since(mark)
    state_seen.forget()
    mark = proxy.mark()
    lone_id, _ = lifecycle.create(api, {**lone, "run_name": "t"}, lifecycle.now_ms(), state_runs=None)
    alone = proxy.since(mark)

    def sent(requests: list[Any]) -> list[tuple[str, list[tuple[str, int]]]]:
        writes = [r for r in requests if r.endpoint != "runs/search"]
        return [(r.endpoint, [(m["key"], m["step"]) for m in r.body.get("metrics") or []]) for r in writes]

    assert sent(in_table) == sent(alone), "the table's create is the lone run's"
    assert [r.endpoint for r in in_table if r.endpoint != "runs/search"] == [
        "runs/create",
        "runs/update",
        "runs/log-batch",
        "runs/log-batch",
    ]
    last = in_table[-1].body
    assert {p["key"] for p in last["params"]} == set(_entry(1)["params"]) and "team" in {t["key"] for t in last["tags"]}
    run_id = run_ids(made.state)["t"]
    assert _steps(mlflow_client, run_id) == _steps(mlflow_client, lone_id) == list(range(600))


@pytest.mark.parametrize(("fault", "refresh"), [("500-after", False), ("drop-after", True)])
def test_every_row_is_logged_once_under_faults(
    api_of: ApiOf, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str, tmp_path: Path,
    fault: str, refresh: bool,
) -> None:  # fmt: skip
    """A create's file batch whose answer is lost, then an append whose second batch fails for good: the table
    records what each run holds, and the next apply (after a refresh, as ``up --refresh`` does, which takes in
    how far the file is logged) sends only what is missing."""
    api = api_of(fault_proxy.url)
    key = unique("table").replace("-", "")
    paths = {k: tmp_path / f"{k}.csv" for k in ("a", "b")}
    runs = {k: _entry(i, metrics_file=_write(p, _curve(600))) for i, (k, p) in enumerate(paths.items())}
    inputs = _check(experiment_id, runs)
    fault_proxy.fail("runs/log-batch", fault, nth=2)  # type: ignore[arg-type]
    made = _up(api, inputs, {}, key)
    assert fault_proxy.fired() == 1
    ids = run_ids(made.state)
    for k in runs:
        assert _steps(mlflow_client, ids[k]) == list(range(600)), "each row once"
    fault_proxy.clear()

    _write(paths["b"], _curve(2_000))  # 2,800 rows more: three log-batches
    grown = _check(experiment_id, runs, inputs)
    fault_proxy.fail("runs/log-batch", "503", nth=2, times=1_000)
    with pytest.raises(TableFailed) as failed:
        _up(api, grown, made.state, key)
    assert list(failed.value.failures) == ['runs["b"]']
    partial = failed.value.state
    fault_proxy.clear()
    if refresh:
        partial = refresh_table(api, partial, grown).state
        assert partial["runs"]["b"][mf.LOGGED]["rows"] == 1_200 + mf.BATCH_ROWS, "the first batch of the append"

    done = _up(api, grown, partial, key)

    assert run_ids(done.state) == ids
    assert _steps(mlflow_client, ids["b"]) == list(range(2_000)), "every row once"
    assert done.state["runs"]["b"][mf.LOGGED]["rows"] == 4_000
    assert not diff_table(done.state, _check(experiment_id, runs, grown)).changes
    active = {i for i, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"}
    assert active == set(ids.values()), "no run made twice"


def test_a_bad_file_names_the_entry_and_the_line_and_nothing_is_made(
    proxy: RecordingProxy, experiment_id: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("key,value,step\nloss,0.5,0\nloss,oops,1\n")
    runs = {
        "ok": _entry(1, metrics_file=_write(tmp_path / "ok.csv", _curve(3))),
        "bert-sst2": _entry(2, metrics_file=FileAsset(str(bad))),
        "gone": _entry(3, metrics_file=FileAsset(str(tmp_path / "missing.csv"))),
        "inline-too": _entry(4, metrics_file=FileAsset(str(tmp_path / "ok.csv")), metrics=[{"key": "f1", "value": 1}]),
    }
    mark = proxy.mark()
    _, failures = check_table({"experiment_id": experiment_id, "runs": runs}, read_files=True)
    by_prop = dict(failures)
    assert set(by_prop) == {
        'runs["bert-sst2"].metrics_file',
        'runs["gone"].metrics_file',
    }, failures
    assert f"{bad}, line 3, column 2 (value)" in by_prop['runs["bert-sst2"].metrics_file']
    assert "missing.csv" in by_prop['runs["gone"].metrics_file']
    assert proxy.since(mark) == [], "Check sends nothing"


def test_a_summary_is_kept_while_the_file_still_holds_it(experiment_id: str, tmp_path: Path) -> None:
    """Check need not parse an entry's file again while its bytes are the summary's (the dynamic door), or while
    the door's word says it is unchanged (the plugin's engine hash); a grown file is read again."""
    asset = _write(tmp_path / "a.csv", _curve(10))
    old = _check(experiment_id, {"a": {"metrics_file": asset}, "b": {"status": "FINISHED"}})
    news = {"experiment_id": experiment_id, "runs": {"a": {"metrics_file": asset}, "b": {"status": "FINISHED"}}}
    assert summaries_to_reuse(old, news) == {"a": old["runs"]["a"][mf.SUMMARY]}
    assert summaries_to_reuse(old, news, lambda before, after: False) == {}, "the door says changed: read again"
    _write(tmp_path / "a.csv", _curve(11))
    assert summaries_to_reuse(old, news) == {}

"""Generated histories of edits, drift and faults, checked against a model of what the program declares.

hypothesis draws a history: program edits (runs added and removed; params, tags, description and status
changed; points appended, with and without timestamps), a colleague's drift through ``MlflowClient`` (a
managed tag edited, a run deleted, a run of their own in the experiment), and faults armed for the next
``up`` (429 with Retry-After, 503, 500-after, drop-before and drop-after, on a chosen endpoint). Each
``up`` is ``pulumi up --refresh`` as the stand-in engine runs it (``support.engine``: the program with the
SDK, each resource through a real ``python -m pulumi.dynamic`` host, behind the fault proxy); a refresh
first is what brings a colleague's drift back into the plan.

After every ``up`` that completes, the server must hold exactly what the model declares: each point once
(with its timestamp where one was declared), params, managed tags, description and status; every active
run of the experiment is in the state, or is the colleague's; no run carries the ``creating:`` mark; and a
preview shows no change. After an ``up`` that failed, the next clean one must reach the same. hypothesis
shrinks a failing history to its fewest steps and prints them; keep it as an ``@example``-style test below.

Budget: ``PULUMI_MLFLOW_RUNS_MODEL_HISTORIES`` histories of up to ``PULUMI_MLFLOW_RUNS_MODEL_STEPS`` steps
(CI: 8 and 12). Derandomized: the same histories on every machine; nothing here is timed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from pulumi_mlflow_runs import Experiment, ExperimentRun

from support.engine import Engine, EngineError
from support.fault_proxy import FaultProxy
from support.host import HostError
from support.runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

HISTORIES = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_HISTORIES", "8"))
STEPS = int(os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_STEPS", "12"))
NAMES = ("alpha", "beta", "gamma")
FAULTS = ("429", "503", "500-after", "drop-before", "drop-after", "outage")
"""``outage``: every request to the endpoint gets 503 until the retry deadline (2 s here) ends the ``up``."""
ENDPOINTS = ("runs/get", "runs/get", "runs/log-batch", "runs/log-batch", "runs/update", "runs/create", "runs/delete")
"""Where a fault lands, the endpoints every ``up`` uses (a refresh reads each run) weighted up."""
DEADLINE = "2"
VALUES = st.sampled_from([0.5, 0.25, 1.0, 2.0, 0.125, 3.5])
T0 = 1_767_225_600_000


def _program(experiment: str, runs: dict[str, dict[str, Any]]) -> Callable[[], None]:
    """The program the model declares, as a user would write it."""

    def program() -> None:
        exp = Experiment("experiment", name=experiment)
        for name, run in sorted(runs.items()):
            ExperimentRun(name, experiment_id=exp.experiment_id, run_name=name, **run)

    return program


class Convergence(RuleBasedStateMachine):
    """One stack's history; ``client``, ``proxy`` and ``workdir`` are set on the class by the test."""

    client: MlflowClient
    proxy: FaultProxy
    workdir: Path
    seen: Counter[str]
    """What the histories did, for the figures (docs/reliability.md) and so the test cannot pass idle."""

    def __init__(self) -> None:
        super().__init__()
        self.experiment = unique("model")
        self.runs: dict[str, dict[str, Any]] = {}
        self.colleague: set[str] = set()
        self.deleted: set[str] = set()
        self.folder = Path(tempfile.mkdtemp(dir=self.workdir))
        env = {"MLFLOW_TRACKING_URI": self.proxy.url, "PULUMI_MLFLOW_RUNS_RETRY_DEADLINE": DEADLINE}
        self.engine = Engine(lambda: None, self.folder / "state.json", env)
        self.proxy.clear()

    # ---- the program ---------------------------------------------------------------------------------------

    @initialize(name=st.sampled_from(NAMES), lr=VALUES)
    def first_run(self, name: str, lr: float) -> None:
        self.runs[name] = {"params": {"lr": str(lr)}, "metrics": [{"key": "loss", "value": lr, "step": 0}]}
        self.up([])

    @precondition(lambda self: len(self.runs) < len(NAMES))
    @rule(data=st.data())
    def add_run(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from([n for n in NAMES if n not in self.runs]))
        self.runs[name] = {"params": {"seed": str(data.draw(st.integers(0, 9)))}, "tags": {"team": "a"}}

    @precondition(lambda self: len(self.runs) > 1)
    @rule(data=st.data())
    def remove_run(self, data: st.DataObject) -> None:
        del self.runs[data.draw(st.sampled_from(sorted(self.runs)))]

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), count=st.integers(1, 3), stamped=st.booleans(), value=VALUES)
    def append_points(self, data: st.DataObject, count: int, stamped: bool, value: float) -> None:
        run = self.runs[data.draw(st.sampled_from(sorted(self.runs)))]
        points = run.setdefault("metrics", [])
        key = data.draw(st.sampled_from(["loss", "acc"]))
        step = max((p["step"] for p in points if p["key"] == key), default=-1) + 1
        for i in range(count):
            point: dict[str, Any] = {"key": key, "value": value, "step": step + i}
            if stamped:
                point["timestamp"] = T0 + 1000 * (step + i)
            points.append(point)

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), value=st.sampled_from(["a", "b", "c", None]))
    def set_tag(self, data: st.DataObject, value: str | None) -> None:
        run = self.runs[data.draw(st.sampled_from(sorted(self.runs)))]
        tags = dict(run.get("tags") or {})
        if value is None:
            tags.pop("team", None)
        else:
            tags["team"] = value
        run["tags"] = tags

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), status=st.sampled_from(["RUNNING", "FINISHED", None]), note=st.sampled_from(["", "n1", None]))
    def status_and_description(self, data: st.DataObject, status: str | None, note: str | None) -> None:
        run = self.runs[data.draw(st.sampled_from(sorted(self.runs)))]
        for key, value in (("status", status), ("description", note or None)):
            if value is None:
                run.pop(key, None)
            else:
                run[key] = value

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), value=VALUES)
    def change_param(self, data: st.DataObject, value: float) -> None:
        """A written param changed: MLflow cannot, so the run is replaced."""
        run = self.runs[data.draw(st.sampled_from(sorted(self.runs)))]
        run["params"] = {**(run.get("params") or {}), "lr": str(value)}

    # ---- a colleague ---------------------------------------------------------------------------------------

    def _active(self) -> list[str]:
        """The managed runs a colleague can still touch (MLflow refuses writes to a deleted run)."""
        return sorted(set(self._managed().values()) - self.deleted)

    @precondition(lambda self: self._active())
    @rule(data=st.data(), value=st.sampled_from(["x", "y"]))
    def colleague_edits_a_tag(self, data: st.DataObject, value: str) -> None:
        run_id = data.draw(st.sampled_from(self._active()))
        self.client.set_tag(run_id, "team", value)
        self.seen["drift: tag edited"] += 1

    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def colleague_deletes_a_run(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(self._active()))
        self.client.delete_run(run_id)
        self.deleted.add(run_id)
        self.seen["drift: run deleted"] += 1

    @precondition(lambda self: self._managed() and not self.colleague)
    @rule()
    def colleague_adds_a_run(self) -> None:
        experiment = self.client.get_experiment_by_name(self.experiment)
        run = self.client.create_run(experiment.experiment_id, run_name="theirs", tags={"team": "them"})
        self.client.log_metric(run.info.run_id, "loss", 9.0, step=0)
        self.colleague.add(run.info.run_id)
        self.seen["drift: a colleague's run"] += 1

    # ---- faults and ups -------------------------------------------------------------------------------------

    @rule(faults=st.lists(st.tuples(st.sampled_from(ENDPOINTS), st.sampled_from(FAULTS)), min_size=1, max_size=2))
    def up_with_faults(self, faults: list[tuple[str, str]]) -> None:
        self.up(faults)

    @rule()
    def up(self, faults: list[tuple[str, str]] | None = None) -> None:
        """``up`` with ``faults`` armed on the proxy: each fails the first request to its endpoint, once."""
        for endpoint, fault in faults or []:
            if fault == "outage":
                self.proxy.fail(endpoint, "503", times=10_000)
            else:
                self.proxy.fail(endpoint, fault, retry_after=0.2 if fault == "429" else None)  # type: ignore[arg-type]
            self.seen[f"armed {fault}"] += 1
        self.seen["up"] += 1
        try:
            self._up()
        except (EngineError, HostError):  # the stand-in's refresh raises the host's error as it is
            if not faults:
                raise  # no fault: a failure is a finding
            self.seen["up failed, then a clean up"] += 1
            self.seen["faults fired"] += self.proxy.fired()
            self.proxy.clear()
            self._up()  # a failed up is followed by a clean one, which must converge
        self.seen["faults fired"] += self.proxy.fired()
        self.proxy.clear()
        self.deleted.clear()  # the up restored them
        self.check_server()

    def _up(self) -> None:
        self.engine.program = _program(self.experiment, {k: dict(v) for k, v in self.runs.items()})
        if self.engine.state_file.exists():
            self.engine.refresh()
        self.engine.up()

    # ---- what must hold ------------------------------------------------------------------------------------

    def _managed(self) -> dict[str, str]:
        if not self.engine.state_file.exists():
            return {}
        return {
            r["name"]: r["id"]
            for r in self.engine.resources()
            if r["type"].endswith(":ExperimentRun") and not r.get("delete")
        }

    def check_server(self) -> None:
        managed = self._managed()
        assert set(managed) == set(self.runs), (managed, sorted(self.runs))
        experiment = self.client.get_experiment_by_name(self.experiment)
        active = {
            rid
            for rid, r in all_runs(self.client, experiment.experiment_id).items()
            if r.info.lifecycle_stage == "active"
        }
        assert active == set(managed.values()) | self.colleague, "a run the state does not know, or a managed run gone"
        for name, run_id in managed.items():
            self._check_run(name, run_id)
        assert not self.engine.preview().changed(), "a preview right after an up shows a change"

    def _check_run(self, name: str, run_id: str) -> None:
        declared = self.runs[name]
        run = self.client.get_run(run_id)
        assert run.data.params == declared.get("params", {}), (name, run.data.params)
        tags = run.data.tags
        for key, value in (declared.get("tags") or {}).items():
            assert tags.get(key) == value, (name, key, tags.get(key))
        assert not tags.get("pulumi.resource_key", "").startswith("creating:"), (name, "left unfinished")
        assert tags.get("mlflow.note.content") == declared.get("description"), (name, "description")
        if declared.get("status"):
            assert run.info.status == declared["status"], (name, run.info.status)
        points = declared.get("metrics") or []
        for key in {p["key"] for p in points} | set(run.data.metrics):
            logged = sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))
            wanted = sorted((p["step"], p["value"]) for p in points if p["key"] == key)
            assert logged == wanted, (name, key, "each declared point once", logged, wanted)
            stamps = {(m.step, m.timestamp) for m in self.client.get_metric_history(run_id, key)}
            for p in points:
                if p["key"] == key and "timestamp" in p:
                    assert (p["step"], p["timestamp"]) in stamps, (name, key, p)

    def teardown(self) -> None:
        self.proxy.clear()
        if self.engine.state_file.exists():
            with contextlib.suppress(EngineError, HostError):  # the experiment is unique to this history anyway
                self.engine.destroy()


@pytest.mark.timeout(1800)
def test_generated_histories_converge(
    tmp_path: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient, mlflow_env: str
) -> None:
    Convergence.client, Convergence.proxy, Convergence.workdir = mlflow_client, fault_proxy, tmp_path
    Convergence.seen = Counter()
    run_state_machine_as_test(
        Convergence,
        settings=settings(
            max_examples=HISTORIES,
            stateful_step_count=STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    seen = Convergence.seen
    print(f"\nmodel: {HISTORIES} histories of up to {STEPS} steps: {dict(sorted(seen.items()))}")
    assert seen["up"] >= HISTORIES and seen["faults fired"] and seen["up failed, then a clean up"], seen

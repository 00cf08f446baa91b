"""The convergence model: a stack's generated history of edits, drift, faults and kills, checked after every ``up``.

One ``RuleBasedStateMachine`` drives any of three stacks (``support.model_stacks``): the stand-in engine
with the dynamic provider host (fast), and the real CLI from a project folder on the dynamic provider or
on the native plugin. The program is the same for all (``support/model_program``, which reads the
``model.json`` the model writes), so the two front doors are driven by one model and cannot drift apart.

Rules, drawn at random:

* the program: runs added and removed; tags, params, description, status and end time changed; metric
  points appended (with and without timestamps), altered or removed; artifact files added, edited or
  removed; dataset inputs added or changed; the experiment renamed;
* the run's metrics file (``metrics_file``, CSV or JSON Lines beside the program), as a training job and its
  user change it: declared (the first run's too), rows appended with and without timestamps (sometimes with
  the next row begun and no newline, which a later append completes), a row altered, the file cut back to
  before a row, the file replaced by another one (at its path when of the same format, else at another, the
  old one gone), the input dropped;
* a colleague, through ``MlflowClient``: a managed tag edited, a tag of their own added, a run deleted,
  restored or purged (``mlflow gc``), a run of their own in the experiment;
* faults armed for the next ``up`` on a chosen endpoint: 429 with Retry-After, 503, 500-after, drop-before,
  drop-after, an outage past the retry deadline, the server stopped and started again;
* an interrupted ``up`` (the CLI stacks): the CLI killed (SIGKILL, with everything under it) or interrupted
  (SIGINT), or the provider's process killed (SIGKILL) or interrupted (SIGINT), when a chosen request arrives.

After every ``up`` that completes, ``check`` requires: the server holds exactly what the program declares
(each point once, with its declared timestamp; params, managed tags, description, status and end time;
dataset inputs; artifacts byte for byte); each complete row of the metrics file is a point, once, beside the
``metrics`` points (a row without a timestamp with one, the same for every such row of one append; a last
line without its newline is no point yet); a run whose logged rows changed (or whose file went) was
replaced; every active run of the experiment is in the state or is the colleague's; no run carries the
``creating:`` mark; the colleague's own tags are still there; and a preview shows no change. An ``up`` that
fails or is killed is followed by what the user then does (the CLI's own advice after a kill), and the next
clean ``up`` must reach the same.

The histories are derandomized, seeded by the source of the state machine's class, and drawn without
hypothesis's constants from this repository's modules (``no_local_constants``), so that they do not depend
on which of those modules a test process has imported, nor on the numbers in them.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .fault_proxy import ANY
from .purge import purge_run
from .runs import all_runs, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from .fault_proxy import FaultProxy
    from .mlflow_server import MlflowServer
    from .model_stacks import ModelStack, StackFactory

NAMES = ("alpha", "beta", "gamma")
FAULTS = ("429", "503", "500-after", "drop-before", "drop-after")
"""Faults the provider's retries ride out: the ``up`` completes."""
OUTAGES = ("outage", "restart")
"""Faults that end the ``up``. ``outage``: every request to the endpoint gets 503 until the retry deadline;
``restart``: the server is stopped when the request arrives (the proxy answers 502, as a gateway in front
of a stopped server does) and started again at once, which takes longer than the deadline."""
ENDPOINTS = (
    "runs/get", "runs/get", "runs/log-batch", "runs/log-batch", "runs/update", "runs/create", "runs/delete",
    "runs/log-inputs", "runs/set-tag", "experiments/update",
)  # fmt: skip
"""Where a fault or a kill lands: the endpoints every ``up`` uses (a refresh reads each run) weighted up."""
STOPS = (ANY, ANY, ANY, ANY, ANY, *ENDPOINTS)
"""Where a kill lands: a third of them at whichever request comes (``nth`` of the step's), which every ``up``
reaches; the rest at a chosen endpoint, which an ``up`` that does not use it never does."""
KILLS = ("SIGKILL cli", "SIGINT cli", "SIGKILL provider", "SIGINT provider")
VALUES = st.sampled_from([0.5, 0.25, 1.0, 2.0, 0.125, 3.5])
FILES = ("report.md", "conf/params.yaml")
T0 = 1_767_225_600_000
FILE_KEYS = ("loss", "val")
"""Keys of the metrics file's rows: ``loss`` also has ``metrics`` points, so the provider must tell them apart."""
FILE_STEP = 1000
"""A file's rows start at this step, each key's step one more per row: no row is a ``metrics`` point (those
count up from 0), and a key and step name one row of the file, which ``check`` finds on the server by them."""
FORMATS = ("csv", "jsonl")
CSV_HEADER = "key,value,step,timestamp"
WHICH = st.integers(0, 5)
"""Which run a rule touches: an index into the names it may touch, sorted (``_pick``). Names, not run ids,
so that a printed history replays as it is (``test_convergence_regressions.py``)."""


def _pick(names: Any, which: int) -> str:
    ordered = sorted(names)
    return str(ordered[which % len(ordered)])


def _row_text(row: dict[str, Any], path: str) -> str:
    """One row of a metrics file as the training job writes it, without its newline."""
    if path.endswith(".jsonl"):
        return json.dumps(row)
    return f"{row['key']},{row['value']!r},{row['step']},{row.get('timestamp', '')}"


def metrics_file_text(declared: dict[str, Any]) -> str:
    """A declared metrics file's content: the header (CSV), each complete row with its newline, and the part of
    the row still being written (``partial``: the row and how many characters of it are there)."""
    path = declared["path"]
    lines = [] if path.endswith(".jsonl") else [CSV_HEADER]
    lines += [_row_text(row, path) for row in declared["rows"]]
    text = "".join(f"{line}\n" for line in lines)
    partial = declared.get("partial")
    if partial:
        text += _row_text(partial["row"], path)[: partial["cut"]]
    return text


def _other_key(file: dict[str, Any]) -> str:
    """The key of a metrics file's next row: the one its last complete row does not have."""
    last = file["rows"][-1]["key"] if file["rows"] else FILE_KEYS[-1]
    return FILE_KEYS[(FILE_KEYS.index(last) + 1) % len(FILE_KEYS)]


def _loose(rows: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The rows without a timestamp, by key and step."""
    return [(r["key"], r["step"]) for r in rows if "timestamp" not in r]


class Convergence(RuleBasedStateMachine):
    """One stack's history. The test sets the class attributes; ``seen`` counts what the histories did, for
    the figures (docs/reliability.md) and so that a test cannot pass idle."""

    client: ClassVar[MlflowClient]
    server: ClassVar[MlflowServer]
    proxy: ClassVar[FaultProxy]
    workdir: ClassVar[Path]
    make_stack: ClassVar[StackFactory]
    seen: ClassVar[Counter[str]]
    as_table: ClassVar[bool] = False
    """The runs declared as the entries of one ``RunTable`` (which takes no metrics file: those rules rest)."""

    def __init__(self) -> None:
        super().__init__()
        base = unique("model")
        self.spec: dict[str, Any] = {
            "experiment": base, "artifact_location": f"mlflow-artifacts:/{base}", "runs": {}, "as_table": self.as_table,
        }  # fmt: skip
        self.colleague: set[str] = set()
        self.colleague_tags: dict[str, dict[str, str]] = {}
        self.deleted: set[str] = set()
        self.purged: set[str] = set()
        self.proxy.clear()
        self.stack: ModelStack = self.make_stack(Path(tempfile.mkdtemp(dir=self.workdir)), self.proxy)
        self.stack.write(self.spec)
        self.experiment_id = ""
        self.drift = 0
        self.last_up: tuple[str, int] | None = None
        """The program and the drift count at the last ``up``: a plain ``up`` waits for a change."""
        self.file_rows: dict[str, list[dict[str, Any]]] = {}
        """Each run's metrics file rows logged by the last completed ``up`` (its complete rows then)."""
        self.appends: dict[str, list[list[tuple[str, int]]]] = {}
        """Each run's appends: the rows without a timestamp that one ``up`` logged, which share one timestamp
        (a replace logs all the file's rows in one go)."""
        self.must_go: dict[str, str] = {}
        """Runs the ``up`` under way must replace (their logged rows changed, or their file went): name, old id."""
        self.serial = 0

    def _run(self, which: int) -> dict[str, Any]:
        run: dict[str, Any] = self.spec["runs"][_pick(self.spec["runs"], which)]
        return run

    # ---- the program ---------------------------------------------------------------------------------------

    @initialize(name=st.sampled_from(NAMES), lr=VALUES, file=st.sampled_from([*FORMATS, None]), stamped=st.booleans())
    def first_run(self, name: str, lr: float, file: str | None = None, stamped: bool = False) -> None:
        """The first run, with a metrics file of two rows unless ``file`` is None."""
        self.spec["runs"][name] = {"params": {"lr": str(lr)}, "metrics": [{"key": "loss", "value": lr, "step": 0}]}
        if file:
            self._new_file(name, file, key="loss", count=2, stamped=stamped, value=lr)
        self.up()

    @precondition(lambda self: len(self.spec["runs"]) < len(NAMES))
    @rule(which=WHICH, seed=st.integers(0, 9))
    def add_run(self, which: int, seed: int) -> None:
        name = _pick([n for n in NAMES if n not in self.spec["runs"]], which)
        self.spec["runs"][name] = {"params": {"seed": str(seed)}, "tags": {"team": "a"}}

    @precondition(lambda self: len(self.spec["runs"]) > 1)
    @rule(which=WHICH)
    def remove_run(self, which: int) -> None:
        del self.spec["runs"][_pick(self.spec["runs"], which)]

    @precondition(lambda self: self.spec["runs"])
    @rule(
        which=WHICH, key=st.sampled_from(["loss", "acc"]), count=st.integers(1, 3), stamped=st.booleans(), value=VALUES
    )
    def append_points(self, which: int, key: str, count: int, stamped: bool, value: float) -> None:
        points = self._run(which).setdefault("metrics", [])
        step = max((p["step"] for p in points if p["key"] == key), default=-1) + 1
        for i in range(count):
            point: dict[str, Any] = {"key": key, "value": value, "step": step + i}
            if stamped:
                point["timestamp"] = T0 + 1000 * (step + i)
            points.append(point)

    @precondition(lambda self: any(r.get("metrics") for r in self.spec["runs"].values()))
    @rule(which=WHICH, point=st.integers(0, 20), value=VALUES, remove=st.booleans())
    def alter_a_point(self, which: int, point: int, value: float, remove: bool) -> None:
        """A logged point altered or removed: MLflow cannot, so the run is replaced."""
        name = _pick([n for n, r in self.spec["runs"].items() if r.get("metrics")], which)
        points = self.spec["runs"][name]["metrics"]
        index = point % len(points)
        if remove:
            del points[index]
        else:
            points[index] = {**points[index], "value": value + points[index]["value"]}

    # ---- the metrics file -----------------------------------------------------------------------------------

    def _with_file(self, rows: bool = False) -> list[str]:
        """The runs that declare a metrics file (with at least one complete row)."""
        runs = self.spec["runs"].items()
        return [n for n, r in runs if r.get("metrics_file") and (r["metrics_file"]["rows"] or not rows)]

    @staticmethod
    def _next_row(file: dict[str, Any], key: str, stamped: bool, value: float) -> dict[str, Any]:
        taken = [r["step"] for r in [*file["rows"], *([file["partial"]["row"]] if file.get("partial") else [])]
                 if r["key"] == key]  # fmt: skip
        step = max(taken, default=FILE_STEP - 1) + 1
        row: dict[str, Any] = {"key": key, "value": value, "step": step}
        if stamped:
            row["timestamp"] = T0 + 1000 * step
        return row

    def _new_file(self, name: str, fmt: str, *, key: str, count: int, stamped: bool, value: float) -> None:
        """A new file for the run, its rows' keys taking turns from ``key``: at the path of the file it replaces
        where that is of the same format, else at a path of its own (the old file gone from the folder)."""
        old = self.spec["runs"][name].get("metrics_file")
        if old is not None and old["path"].endswith(f".{fmt}"):
            path = old["path"]
        else:
            self.serial += 1
            path = f"metrics/{name}-{self.serial}.{fmt}"
        file: dict[str, Any] = {"path": path, "rows": [], "partial": None}
        for i in range(count):
            file["rows"].append(self._next_row(file, FILE_KEYS[(FILE_KEYS.index(key) + i) % 2], stamped, value))
        self.spec["runs"][name]["metrics_file"] = file

    @precondition(lambda self: self.spec["runs"])
    @rule(
        which=WHICH, fmt=st.sampled_from([*FORMATS, None]), key=st.sampled_from(FILE_KEYS), count=st.integers(0, 3),
        stamped=st.booleans(), value=VALUES,
    )  # fmt: skip
    def declare_metrics_file(
        self, which: int, fmt: str | None, key: str, count: int, stamped: bool, value: float
    ) -> None:
        """A metrics file declared, or replaced by another one (at its path when of the same format, else at
        another): a replace once rows of the old one are logged; or the input dropped (``fmt`` None: a replace
        too, the new run without the file's points)."""
        name = _pick(self.spec["runs"], which)
        had = "metrics_file" in self.spec["runs"][name]
        if fmt is None:
            self.spec["runs"][name].pop("metrics_file", None)
            self.seen["file: input dropped" if had else "file: none to drop"] += 1
            return
        self._new_file(name, fmt, key=key, count=count, stamped=stamped, value=value)
        self.seen["file: replaced by another" if had else "file: declared"] += 1

    @precondition(lambda self: self._with_file())
    @rule(
        which=WHICH, count=st.integers(1, 2), stamped=st.booleans(), value=VALUES, written=st.integers(0, 40),
    )  # fmt: skip
    def append_rows(self, which: int, count: int, stamped: bool, value: float, written: int) -> None:
        """Rows the training job appends, their keys taking turns: the row it was writing completed first, then
        ``count`` more, and unless ``written`` is 0 one more begun, that many of its characters (less than all)
        written and no newline: it waits for the next ``up``."""
        file = self.spec["runs"][_pick(self._with_file(), which)]["metrics_file"]
        if file["partial"]:
            file["rows"].append(file["partial"]["row"])
            file["partial"] = None
            self.seen["file: a partial line completed"] += 1
        for _ in range(count):
            file["rows"].append(self._next_row(file, _other_key(file), stamped, value))
        if count:
            self.seen[f"file: rows appended{'' if stamped else ' without timestamps'}"] += 1
        if written:
            row = self._next_row(file, _other_key(file), stamped, value)
            file["partial"] = {"row": row, "cut": 1 + written % (len(_row_text(row, file["path"])) - 1)}
            self.seen["file: a partial line left"] += 1

    @precondition(lambda self: self._with_file(rows=True))
    @rule(which=WHICH, row=st.integers(0, 20), value=VALUES, edit=st.sampled_from(["cut back", "alter"]))
    def edit_file_rows(self, which: int, row: int, value: float, edit: str) -> None:
        """The file cut back to before its ``row``-th row (that row and those after it removed, and the line
        being written with them), or that row's value altered: a replace where logged rows change or go, else
        a smaller append."""
        file = self.spec["runs"][_pick(self._with_file(rows=True), which)]["metrics_file"]
        rows = file["rows"]
        index = row % len(rows)
        if edit == "cut back":
            del rows[index:]
            file["partial"] = None
            self.seen["file: rows removed"] += 1
        else:
            rows[index] = {**rows[index], "value": value + rows[index]["value"]}
            self.seen["file: a row altered"] += 1

    # ---- the program, continued -----------------------------------------------------------------------------

    @precondition(lambda self: self.spec["runs"])
    @rule(which=WHICH, value=st.sampled_from(["a", "b", "c", None]))
    def set_tag(self, which: int, value: str | None) -> None:
        run = self._run(which)
        tags = dict(run.get("tags") or {})
        if value is None:
            tags.pop("team", None)
        else:
            tags["team"] = value
        run["tags"] = tags

    @precondition(lambda self: self.spec["runs"])
    @rule(
        which=WHICH,
        status=st.sampled_from(["RUNNING", "FINISHED", "FAILED", None]),
        note=st.sampled_from(["", "n1", "n2", None]),
        end=st.sampled_from([None, T0 + 60_000, T0 + 120_000]),
    )
    def status_description_end(self, which: int, status: str | None, note: str | None, end: int | None) -> None:
        run = self._run(which)
        for key, value in (("status", status), ("description", note or None), ("end_time", end)):
            if value is None:
                run.pop(key, None)
            else:
                run[key] = value

    @precondition(lambda self: self.spec["runs"])
    @rule(which=WHICH, value=VALUES)
    def change_param(self, which: int, value: float) -> None:
        """A written param changed: MLflow cannot, so the run is replaced."""
        run = self._run(which)
        run["params"] = {**(run.get("params") or {}), "lr": str(value)}

    @precondition(lambda self: self.spec["runs"])
    @rule(which=WHICH, path=st.sampled_from(FILES), text=st.sampled_from(["", "v1\n", "v2 ✓\n", "x" * 3000, None]))
    def edit_artifact(self, which: int, path: str, text: str | None) -> None:
        """A file added, edited (an empty one too) or removed (None)."""
        run = self._run(which)
        files = dict(run.get("artifacts") or {})
        if text is None:
            files.pop(path, None)
        else:
            files[path] = text
        run["artifacts"] = files

    @precondition(lambda self: self.spec["runs"])
    @rule(which=WHICH, name=st.sampled_from(["train", "eval"]), digest=st.sampled_from(["d1", "d2"]))
    def dataset_input(self, which: int, name: str, digest: str) -> None:
        """A dataset input appended (an update), or an existing one changed (a replace)."""
        run = self._run(which)
        inputs = [i for i in run.get("dataset_inputs") or [] if i["dataset"]["name"] != name]
        dataset = {"name": name, "digest": digest, "source_type": "local", "source": f"/data/{name}"}
        run["dataset_inputs"] = [*inputs, {"dataset": dataset, "tags": {"mlflow.data.context": name}}]

    @rule(suffix=st.sampled_from(["", "-renamed", "-v2"]))
    def rename_experiment(self, suffix: str) -> None:
        self.spec["experiment"] = self.spec["artifact_location"].rsplit("/", 1)[1] + suffix

    # ---- a colleague ---------------------------------------------------------------------------------------

    def _drifted(self, what: str) -> None:
        self.seen[f"drift: {what}"] += 1
        self.drift += 1

    def _managed_where(self, keep: Any) -> dict[str, str]:
        """The managed runs, by name, whose id ``keep`` accepts."""
        return {name: run_id for name, run_id in self.stack.managed().items() if keep(run_id)}

    def _active(self) -> dict[str, str]:
        """The managed runs a colleague can still write to (MLflow refuses writes to a deleted run)."""
        return self._managed_where(lambda run_id: run_id not in self.deleted | self.purged)

    @precondition(lambda self: self._active())
    @rule(which=WHICH, key=st.sampled_from(["team", "their-note"]), value=st.sampled_from(["x", "y"]))
    def colleague_sets_a_tag(self, which: int, key: str, value: str) -> None:
        """``team``: a managed tag edited (the next ``up`` puts it back; a run that does not declare it keeps
        it); ``their-note``: a tag of their own, which no ``up`` may touch."""
        active = self._active()
        run_id = active[_pick(active, which)]
        self.client.set_tag(run_id, key, value)
        if key == "their-note":
            self.colleague_tags.setdefault(run_id, {})[key] = value
        self._drifted(f"tag {key} set")

    @precondition(lambda self: self._active())
    @rule(which=WHICH)
    def colleague_deletes_a_run(self, which: int) -> None:
        active = self._active()
        run_id = active[_pick(active, which)]
        self.client.delete_run(run_id)
        self.deleted.add(run_id)
        self._drifted("run deleted")

    @precondition(lambda self: self.deleted)
    @rule(which=WHICH)
    def colleague_restores_a_run(self, which: int) -> None:
        deleted = self._managed_where(lambda run_id: run_id in self.deleted)
        run_id = deleted[_pick(deleted, which)]
        self.client.restore_run(run_id)
        self.deleted.discard(run_id)
        self._drifted("run restored")

    @precondition(lambda self: self._managed_where(lambda run_id: run_id not in self.purged))
    @rule(which=WHICH)
    def colleague_purges_a_run(self, which: int) -> None:
        """Gone for good (``mlflow gc``): the next ``up`` makes the run again, with everything declared."""
        there = self._managed_where(lambda run_id: run_id not in self.purged)
        run_id = there[_pick(there, which)]
        if run_id in self.deleted:
            self.client.restore_run(run_id)  # purge_run deletes it first
            self.deleted.discard(run_id)
        purge_run(self.server, self.client, run_id)
        self.purged.add(run_id)
        self._drifted("run purged")

    @precondition(lambda self: self.experiment_id and not self.colleague)
    @rule()
    def colleague_adds_a_run(self) -> None:
        run = self.client.create_run(self.experiment_id, run_name="theirs", tags={"team": "them"})
        self.client.log_metric(run.info.run_id, "loss", 9.0, step=0)
        self.colleague.add(run.info.run_id)
        self._drifted("a colleague's run")

    # ---- faults, kills and ups ------------------------------------------------------------------------------

    @rule(faults=st.lists(st.tuples(st.sampled_from(ENDPOINTS), st.sampled_from(FAULTS)), min_size=1, max_size=2))
    def up_with_faults(self, faults: list[tuple[str, str]]) -> None:
        self._up_with(faults)

    @rule(fault=st.sampled_from(OUTAGES), endpoint=st.sampled_from(ENDPOINTS))
    def up_through_an_outage(self, fault: str, endpoint: str) -> None:
        self._up_with([(endpoint, fault)])

    def _up_with(self, faults: list[tuple[str, str]]) -> None:
        restarted: list[threading.Thread] = []
        for endpoint, fault in faults:
            if fault == "outage":
                self.proxy.fail(endpoint, "503", times=10_000)
            elif fault == "restart":
                self.proxy.when(endpoint, lambda: restarted.append(self._restart_server()))
            else:
                self.proxy.fail(endpoint, fault, retry_after=0.2 if fault == "429" else None)  # type: ignore[arg-type]
            self.seen[f"armed: {fault}"] += 1
        self.up(armed=True, before_retry=lambda: [t.join() for t in restarted])
        self.seen["fired: restart"] += len(restarted)

    @precondition(lambda self: self.stack.can_kill)
    @rule(how=st.sampled_from(KILLS), endpoint=st.sampled_from(STOPS), nth=st.integers(1, 3))
    def up_interrupted(self, how: str, endpoint: str, nth: int) -> None:
        self.proxy.when(endpoint, lambda: self.stack.kill(how), nth=nth)
        self.seen[f"armed: {how}"] += 1
        self.up(armed=True)

    def _changed(self) -> bool:
        return self.last_up != (spec_json(self.spec, ""), self.drift)

    @precondition(lambda self: self._changed())
    @rule()
    def up(self, *, armed: bool = False, before_retry: Any = None) -> None:
        """``up`` (after a refresh). With something ``armed``, a failure is followed by what the user does
        next and one clean ``up``, which must converge; without, a failure is a finding."""
        self.stack.write(self.spec)
        self._file_expectations(armed)
        self.seen["up"] += 1
        completed = self.stack.up()
        for fault, count in self.proxy.fired_by_fault().items():
            if fault != "call":  # a kill or a restart, counted as what it did
                self.seen[f"fired: {fault}"] += count
        kills = self.stack.kills_done()
        for how in kills:
            self.seen[f"fired: {how}"] += 1
        self.proxy.clear()
        if before_retry is not None:
            before_retry()
        if not completed:
            assert armed, f"an up with nothing armed failed:\n{self.stack.last_output()}"
            self.seen["up failed or killed, then a clean up"] += 1
            self.stack.recover()
            self.seen["up"] += 1
            assert self.stack.up(), f"the clean up after a failed one failed too:\n{self.stack.last_output()}"
        self.last_up = (spec_json(self.spec, ""), self.drift)
        self.deleted.clear()  # the up restored them
        self.purged.clear()  # and made them again
        self._files_logged()
        self.check()

    def _file_expectations(self, armed: bool) -> None:
        """Before an ``up``: the runs it must replace, since rows of their file it logged changed or the file
        went (whichever ``up`` completes it, the run then is another); and what it has to do, for the figures."""
        managed = self.stack.managed()
        for name, run in self.spec["runs"].items():
            file = run.get("metrics_file")
            rows, before = (file or {}).get("rows"), self.file_rows.get(name)
            if file and file["partial"]:
                self.seen["up: a partial line waiting"] += 1
            if name not in managed:
                continue
            if before and (rows is None or rows[: len(before)] != before):
                self.must_go[name] = managed[name]
                self.seen["up: a run to replace for its file"] += 1
            elif rows and len(rows) > len(before or []):
                self.seen[f"up{' armed' if armed else ''}: file rows to append"] += 1

    def _files_logged(self) -> None:
        """After a completed ``up``: each file's complete rows are logged; those new since the last ``up`` were
        one append (all of them, where the logged rows changed: the replacing run logs the file in one go)."""
        for name in list(self.file_rows):
            if "metrics_file" not in self.spec["runs"].get(name, {}):
                del self.file_rows[name], self.appends[name]
        for name, run in self.spec["runs"].items():
            if "metrics_file" not in run:
                continue
            rows = run["metrics_file"]["rows"]
            before = self.file_rows.get(name)
            if before is not None and rows[: len(before)] == before:
                groups = [*self.appends[name], _loose(rows[len(before) :])]
            else:
                groups = [_loose(rows)]
            self.file_rows[name] = [dict(r) for r in rows]
            self.appends[name] = [g for g in groups if g]

    def _restart_server(self) -> threading.Thread:
        """Stop the server now (the request in flight finds it gone) and start it again in the background."""
        self.server.stop()
        thread = threading.Thread(target=self.server.start_again, name="mlflow-restart")
        thread.start()
        return thread

    @invariant()
    def count_steps(self) -> None:
        """Not a check: counts the steps taken (after each rule, and after the first), for the figures."""
        self.seen["steps"] += 1

    # ---- what must hold ------------------------------------------------------------------------------------

    def check(self) -> None:
        managed = self.stack.managed()
        assert set(managed) == set(self.spec["runs"]), (managed, sorted(self.spec["runs"]))
        assert not self.stack.pending(), f"pending operations after a completed up: {self.stack.pending()}"
        experiment = self.client.get_experiment_by_name(self.spec["experiment"])
        assert experiment is not None, f"no experiment named {self.spec['experiment']!r}"
        assert not self.experiment_id or experiment.experiment_id == self.experiment_id, "the experiment was replaced"
        self.experiment_id = experiment.experiment_id
        active = {
            rid for rid, r in all_runs(self.client, self.experiment_id).items() if r.info.lifecycle_stage == "active"
        }
        known = set(managed.values()) | self.colleague
        assert active == known, ("a run the state does not know, or a managed run gone", active - known, known - active)
        for name, run_id in managed.items():
            self._check_run(name, run_id)
        for name, old in self.must_go.items():
            assert managed[name] != old, (name, "its logged file rows changed or its file went, yet not replaced")
            self.seen["file: a run replaced for its file"] += 1
        self.must_go.clear()
        shown = self.stack.changes()
        assert not shown, f"a preview right after an up shows a change:\n{shown}"

    def _check_run(self, name: str, run_id: str) -> None:
        declared = self.spec["runs"][name]
        run = self.client.get_run(run_id)
        assert run.data.params == declared.get("params", {}), (name, run.data.params)
        tags = run.data.tags
        for key, value in (declared.get("tags") or {}).items():
            assert tags.get(key) == value, (name, key, tags.get(key))
        for key, value in self.colleague_tags.get(run_id, {}).items():
            assert tags.get(key) == value, (name, "a colleague's own tag was touched", key)
        assert not tags.get("pulumi.resource_key", "").startswith("creating:"), (name, "left unfinished")
        assert tags.get("mlflow.note.content") == declared.get("description"), (name, "description")
        if declared.get("status"):
            assert run.info.status == declared["status"], (name, run.info.status)
        if declared.get("end_time"):
            assert run.info.end_time == declared["end_time"], (name, run.info.end_time)
        rows = (declared.get("metrics_file") or {}).get("rows") or []
        points = [*(declared.get("metrics") or []), *rows]
        stamped_at: dict[tuple[str, int], set[int]] = {}
        for key in {p["key"] for p in points} | set(run.data.metrics):
            history = self.client.get_metric_history(run_id, key)
            logged = sorted((m.step, m.value) for m in history)
            wanted = sorted((p["step"], p["value"]) for p in points if p["key"] == key)
            assert logged == wanted, (name, key, "each declared point and complete file row once", logged, wanted)
            stamps = {(m.step, m.timestamp) for m in history}
            for p in points:
                if p["key"] == key and "timestamp" in p:
                    assert (p["step"], p["timestamp"]) in stamps, (name, key, p)
            for m in history:
                stamped_at.setdefault((key, m.step), set()).add(m.timestamp)
        for rows_of_one_append in self.appends.get(name, []):
            got = set().union(*(stamped_at[row] for row in rows_of_one_append))
            assert len(got) == 1, (name, "one append's rows without a timestamp got", sorted(got), rows_of_one_append)
        used = sorted((i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs)
        wanted_inputs = sorted(
            (i["dataset"]["name"], i["dataset"]["digest"]) for i in declared.get("dataset_inputs") or []
        )
        assert used == wanted_inputs, (name, "dataset inputs", used, wanted_inputs)
        self._check_files(name, run_id, declared.get("artifacts") or {})

    def _check_files(self, name: str, run_id: str, files: dict[str, str]) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(
            self.client.get_run(run_id).info.artifact_uri, tracking_uri=self.client.tracking_uri
        )
        found: set[str] = set()
        todo: list[str | None] = [None]
        while todo:
            for info in repo.list_artifacts(todo.pop()):
                (todo.append(info.path) if info.is_dir else found.add(info.path))
        assert found == set(files), (name, "artifact files", sorted(found), sorted(files))
        for path, text in files.items():
            local = Path(repo.download_artifacts(path, tempfile.mkdtemp(dir=self.workdir)))
            assert local.read_bytes() == text.encode(), (name, path, "not byte for byte")

    def teardown(self) -> None:
        """``destroy`` after the history: every managed run and the experiment go to the trash. A colleague's
        run in the experiment goes with it (MLflow deletes an experiment's runs with it), restorable."""
        self.proxy.clear()
        if self.stack.managed():
            assert self.stack.destroy(), f"destroy failed:\n{self.stack.last_output()}"
            if self.experiment_id:
                assert self.client.get_experiment(self.experiment_id).lifecycle_stage == "deleted"
                left = all_runs(self.client, self.experiment_id)
                assert not [r for r in left.values() if r.info.lifecycle_stage == "active"], "destroy left a run"
                assert self.colleague <= set(left), "a colleague's run is gone for good"
        self.stack.close()
        self.seen["histories"] += 1
        figures = os.environ.get("PULUMI_MLFLOW_RUNS_MODEL_FIGURES")
        if figures:  # the soak's figures so far, whenever it is stopped
            Path(figures).write_text(json.dumps(dict(sorted(self.seen.items())), indent=1))


def spec_json(spec: dict[str, Any], door: str) -> str:
    """``model.json`` for ``support/model_program``."""
    return json.dumps({**spec, "door": door}, indent=1, sort_keys=True)


def write_metrics_files(folder: Path, spec: dict[str, Any]) -> None:
    """The metrics files the runs declare, beside the program (``folder/metrics``), as the training job left
    them; a file no run declares any longer is gone. One that is as it was is not written again."""
    wanted = {f["path"]: metrics_file_text(f) for r in spec["runs"].values() if (f := r.get("metrics_file"))}
    here = folder / "metrics"
    for old in here.glob("*") if here.is_dir() else ():
        if old.relative_to(folder).as_posix() not in wanted:
            old.unlink()
    for path, text in wanted.items():
        target = folder / path
        target.parent.mkdir(exist_ok=True)
        if not target.exists() or target.read_bytes() != text.encode():
            target.write_bytes(text.encode())


def model_settings(histories: int, steps: int) -> settings:
    return settings(
        max_examples=histories,
        stateful_step_count=steps,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@contextmanager
def no_local_constants() -> Iterator[None]:
    """Hypothesis draws only from its own randomness and constants while this lasts.

    Otherwise it draws, now and then, a constant from the source of the modules of this repository imported so
    far (hypothesis's "local constants", 6.1xx): the histories would depend on which of them a test process has
    imported (the same model drew other histories in a process that had imported others) and could change with
    an edit to a number in any of them."""
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    providers.CONSTANTS_CACHE.cache.clear()  # the pools a test before this one drew from
    try:
        with mock.patch.object(providers, "_get_local_constants", Constants):
            yield
    finally:
        providers.CONSTANTS_CACHE.cache.clear()


def drive(machine: type[Convergence], histories: int, steps: int) -> Counter[str]:
    """Run the histories and return what they did, after checking that they did something."""
    machine.seen = Counter()
    with no_local_constants():
        run_state_machine_as_test(machine, settings=model_settings(histories, steps))
    seen = machine.seen
    print(f"\nmodel {machine.__name__}: {histories} histories of up to {steps} steps: {dict(sorted(seen.items()))}")
    assert seen["up"] >= histories and sum(n for k, n in seen.items() if k.startswith("fired: ")), seen
    return seen

"""A ``RunTable`` against a server: its runs created, updated, replaced and deleted in parallel, each exactly
once, and refreshed with one search per hundred runs.

Each run goes through ``run_lifecycle`` as an ``ExperimentRun`` would (its create, update and delete, with their
guarantees); what is the table's own is the plan (``table_diff``), the bound on requests in flight
(``max_parallel`` threads: the core is synchronous), one search for the runs a failed or killed ``up`` made
(``table_keys``: finished, or taken back where no replace is needed), and a partial failure: every
run done is recorded, each failed one as its step left it, and the error names each failed entry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core import state_seen
from pulumi_mlflow_runs.core.errors import MlflowRunsError
from pulumi_mlflow_runs.core.table_diff import EntryChange, EntryDiff, TableDiff, by_run_rules, diff_table
from pulumi_mlflow_runs.core.table_keys import Found, find_runs, run_key
from pulumi_mlflow_runs.core.table_spec import TABLE_RUN_KEYS, entry_path, max_parallel, run_inputs

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.run_origin import RunOrigin

SEARCH_CHUNK = 100
"""Run ids per ``attributes.run_id IN (...)`` search of a refresh (servers cap the list of an IN)."""
Progress = Callable[[int, int], None]
"""Told ``(runs done, runs to do)`` after each run's step, for a long ``up``'s log."""


class TableFailed(MlflowRunsError):
    """Some runs of a table failed; the others are done. ``state`` is the table as it now is (every run done,
    each failed one as its step left it), for a door to record so the next ``up`` finishes only the rest.
    ``failures``: the reason by what failed (``runs["<key>"]``, or a run of the table's to delete)."""

    def __init__(self, failures: Mapping[str, str], state: dict[str, Any], total: int) -> None:
        self.failures = dict(failures)
        self.state = state
        failed = {what: reason for what, reason in sorted(self.failures.items()) if reason != NOT_BEGUN}
        said = []
        if failed:
            lines = "; ".join(f"{what}: {reason}" for what, reason in failed.items())
            said.append(f"{len(failed)} of {total} run(s) of the table failed: {lines}")
        if len(failed) < len(self.failures):  # a list of every run not begun would bury the rest
            said.append(f"{len(self.failures) - len(failed)} of {total} run(s) were {NOT_BEGUN}")
        super().__init__(
            f"{'; '.join(said)}; the others are done. Run `pulumi up` again: it finishes only what is missing."
        )


NOT_BEGUN = "not begun: the `up` was cancelled"


@dataclass
class Applied:
    state: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    """What a reviewer should read: runs kept instead of deleted, and why."""


@dataclass
class _Outcome:
    """The state the table records: what each run's step left, under one lock (steps run in parallel)."""

    runs: dict[str, Any]
    retired: list[str]
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reason(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    text = str(exc) or type(exc).__name__
    return f"{text} ({'; '.join(notes)})" if notes else text


def state_of(table: Mapping[str, Any], runs: Mapping[str, Any], retired: Collection[str] = ()) -> dict[str, Any]:
    """The table's state: its inputs but ``runs`` (a refresh or an update keeps the program's), then the runs."""
    out = {k: v for k, v in table.items() if k != "runs"}
    out["runs"] = dict(runs)
    out["retired"] = list(retired)
    return out


def run_ids(state: Mapping[str, Any]) -> dict[str, str]:
    """The ``runIds`` output: entry key to run id."""
    return {key: run["run_id"] for key, run in (state.get("runs") or {}).items()}


def held_runs(state: Mapping[str, Any]) -> set[str]:
    """Every run the table's state holds: its entries' and the retired ones."""
    return {*run_ids(state).values(), *(state.get("retired") or ())}


class _Apply:
    """One apply of a table: the plan carried out, each run's step on a worker thread."""

    def __init__(
        self, api: MlflowApi, news: Mapping[str, Any], state: Mapping[str, Any], table_key: str, *, now: int,
        take_back: bool, origin: RunOrigin | None = None,
    ) -> None:  # fmt: skip
        self.api, self.news, self.table_key, self.now, self.take_back = api, news, table_key, now, take_back
        self.origin = origin
        self.olds: Mapping[str, Any] = state.get("runs") or {}
        self.found = Found()

    def inputs(self, key: str) -> dict[str, Any]:
        inputs = run_inputs(self.news, key)
        inputs["resource_key"] = run_key(self.table_key, key)
        return inputs

    def create(self, key: str) -> dict[str, Any]:
        """A new run for entry ``key``, or the one a failed or killed ``up`` made for it (finished, or taken back
        and updated to the entry), as ``run_lifecycle.create`` does for one run.

        Unlike a lone run's create, a complete run is taken back when it needs an update, not only when it is
        exactly what the entry declares: the entry may have been edited since the failed ``up`` (whose runs the
        dynamic door's engine never recorded), and a replaced entry's old run, the one a lone run's create cannot
        tell from its own, is held by the table's state and never found here. One that needs a replace is left
        alone (a run ``retainOnDelete`` kept, say, is the user's)."""
        inputs = self.inputs(key)
        if inputs.get("adopt_run_id") is None:
            for run in self.found.unfinished.pop(key, []):
                outputs, _ = lifecycle.converge(self.api, run, self.inputs(key), self.now)
                if outputs is not None:
                    return outputs
                self.api.delete_run(run.info.run_id)  # no longer fits the entry: as a failed create would
            for run in self.found.complete.pop(key, []) if self.take_back else []:
                outputs, _ = lifecycle.converge(self.api, run, self.inputs(key), self.now)
                if outputs is not None:
                    state_seen.taken_back(run.info.run_id)
                    return outputs
        origin = self.origin.of_entry(key) if self.origin is not None else None
        _, outputs = lifecycle.create(self.api, inputs, self.now, state_runs=None, origin=origin)
        return outputs

    def update(self, key: str) -> dict[str, Any]:
        old = self.olds[key]
        return lifecycle.update(self.api, old["run_id"], old, self.inputs(key), self.now)

    def delete(self, run_id: str) -> str | None:
        return lifecycle.delete(self.api, run_id)


def apply_table(
    api: MlflowApi,
    news: Mapping[str, Any],
    state: Mapping[str, Any],
    table_key: str,
    now: int,
    *,
    held: Collection[str] | None = None,
    rule: EntryDiff = by_run_rules,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    origin: RunOrigin | None = None,
) -> Applied:
    """Take the table from ``state`` (its core form, ``{}`` for a create) to ``news`` (checked inputs).

    ``table_key``: the table's resource key (``resource_key.of_urn``). ``held``: for a create, the runs the
    engine's state holds for the table, as far as the door can tell (None: it cannot, and no complete run is
    taken back); an update holds the state's runs. ``stop`` (a Ctrl-C): steps not begun are not begun, and the
    error says which. ``origin``: the table, which each new run names with its entry's key (``run_origin``).
    Raises ``TableFailed`` with the table's state when any run's step failed.
    """
    plan = diff_table(state, news, rule)
    if plan.replaces:
        raise ValueError(f"{', '.join(plan.replaces)} changed: the table is replaced, not updated")
    take_back = bool(state) or held is not None
    work = _Apply(api, news, state, table_key, now=now, take_back=take_back, origin=origin)
    out = _Outcome(runs=dict(work.olds), retired=list(plan.retired))
    creating = {key for key, c in plan.entries.items() if c.action in ("create", "replace")}
    if creating:
        held_ids = held_runs(state) | set(held or ())
        work.found = find_runs(api, news["experiment_id"], table_key, news.get("runs") or {}, held_ids)
        for key in set(work.found.unfinished) - creating:  # a create of it was killed, and its run is held now
            work.found.stray += work.found.unfinished.pop(key)
    steps = list(_steps(work, plan, out))
    total = len(steps)

    def run(step: Callable[[], None], what: str) -> None:
        if stop is not None and stop.is_set():
            with out.lock:
                out.failures[what] = NOT_BEGUN
        else:
            step()
        with out.lock:
            out.done += 1
            done = out.done
        if progress is not None:
            progress(done, total)

    with ThreadPoolExecutor(max_workers=max_parallel(news), thread_name_prefix="run-table") as pool:
        for future in [pool.submit(run, step, what) for what, step in steps]:
            future.result()  # each step records its own failure; this re-raises only a bug of the table's
    table = state_of(news, out.runs, out.retired)
    if out.failures:
        raise TableFailed(out.failures, table, total)
    return Applied(table, out.notes)


def _steps(work: _Apply, plan: TableDiff, out: _Outcome) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(what, step)`` per run to write (``what``: ``runs["<key>"]``, or the run to delete): each step records
    in ``out`` what it left, failed or not."""

    def recorded(what: str, step: Callable[[], None], keep: Callable[[MlflowRunsError], None]) -> Callable[[], None]:
        def call() -> None:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one run's failure stops no other; each is reported
                with out.lock:
                    out.failures[what] = _reason(exc)
                    if isinstance(exc, MlflowRunsError):
                        keep(exc)

        return call

    for key, change in sorted(plan.entries.items()):
        what = entry_path(key)
        yield what, recorded(what, _step(work, key, change, out), _keeper(work, key, change, out))
    for run_id in plan.retired:
        what = f"run {run_id} (of a replaced entry)"
        yield what, recorded(what, _retire(work, run_id, out), lambda exc: None)
    for stray in work.found.stray:
        what = f"run {stray.info.run_id} (left unfinished for a removed entry)"
        yield what, recorded(what, _retire(work, stray.info.run_id, out), lambda exc: None)


def _step(work: _Apply, key: str, change: EntryChange, out: _Outcome) -> Callable[[], None]:
    old = work.olds.get(key)

    def create() -> None:
        outputs = work.create(key)
        with out.lock:
            out.runs[key] = outputs
            if old is not None:  # a replace: the old run goes once its successor is whole
                out.retired.append(old["run_id"])
        if old is not None:
            _retire(work, old["run_id"], out)()

    def update() -> None:
        outputs = work.update(key)
        with out.lock:
            out.runs[key] = outputs

    def delete() -> None:
        assert old is not None
        note = work.delete(old["run_id"])
        with out.lock:
            out.runs.pop(key, None)
            if note is not None:
                out.notes.append(f"{entry_path(key)}: {note}")

    return {"create": create, "replace": create, "update": update, "delete": delete}[change.action]


def _retire(work: _Apply, run_id: str, out: _Outcome) -> Callable[[], None]:
    def retire() -> None:
        note = work.delete(run_id)
        with out.lock:
            if run_id in out.retired:
                out.retired.remove(run_id)
            if note is not None:
                out.notes.append(note)

    return retire


def _keeper(work: _Apply, key: str, change: EntryChange, out: _Outcome) -> Callable[[MlflowRunsError], None]:
    """What the state keeps of entry ``key`` when its step failed (``out.lock`` held): the run a failed create or
    update left (``left_behind``, read from the server by the next update), else the old run, unread."""
    old = work.olds.get(key)

    def keep(exc: MlflowRunsError) -> None:
        if change.action == "delete" or (change.action == "replace" and out.runs.get(key) is not old):
            return  # a delete keeps the run for the next up to delete; a replace whose old run failed to go
            # keeps the new run and lists the old one as retired
        left = exc.left_behind
        if left is not None:
            out.runs[key] = left
            if change.action == "replace" and old is not None:
                out.retired.append(old["run_id"])
        elif old is not None:
            out.runs[key] = {**old, "run": None}

    return keep


def delete_table(api: MlflowApi, state: Mapping[str, Any], parallel: int) -> list[str]:
    """Delete every run the table holds (its entries' and the retired ones), ``parallel`` at a time; what is
    kept and why (``run_lifecycle.delete``). A run already gone is success; any other failure is raised after
    every run was tried, and the next ``destroy`` tries again."""
    ids = sorted(held_runs(state))
    notes: list[str] = []
    failures: dict[str, str] = {}
    lock = threading.Lock()

    def delete(run_id: str) -> None:
        try:
            note = lifecycle.delete(api, run_id)
        except Exception as exc:  # noqa: BLE001 - one run's failure stops no other; each is reported
            with lock:
                failures[f"run {run_id}"] = _reason(exc)
            return
        if note is not None:
            with lock:
                notes.append(note)

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="run-table") as pool:
        list(pool.map(delete, ids))
    if failures:
        raise TableFailed(failures, dict(state), len(ids))
    return notes


# ---- refresh ----------------------------------------------------------------------------------------------


def read_runs(api: MlflowApi, experiment_id: str, ids: list[str], parallel: int = 1) -> dict[str, m.Run]:
    """The runs of ``ids`` that exist (deleted ones too), by id: one search per ``SEARCH_CHUNK`` ids, at most
    ``parallel`` at a time (the table's ``maxParallel``: what its server was sized for)."""
    from pulumi_mlflow_runs.core import models as m

    def search(chunk: list[str]) -> list[m.Run]:
        quoted = ", ".join(f"'{run_id}'" for run_id in chunk)
        query = m.SearchRuns(
            experiment_ids=[experiment_id], filter=f"attributes.run_id IN ({quoted})", run_view_type="ALL"
        )
        return list(api.search_runs(query))

    chunks = [ids[start : start + SEARCH_CHUNK] for start in range(0, len(ids), SEARCH_CHUNK)]
    found: dict[str, m.Run] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(chunks))), thread_name_prefix="run-table") as pool:
        for runs in pool.map(search, chunks):
            found.update((run.info.run_id, run) for run in runs)
    return found


@dataclass(frozen=True)
class Refreshed:
    state: dict[str, Any]
    inputs: dict[str, Any] | None
    """The table's inputs to record (None: keep the stored ones as they are)."""


def refresh_table(api: MlflowApi, state: Mapping[str, Any], stored: Mapping[str, Any] | None) -> Refreshed:
    """The table's runs as the server has them now: read in searches of a hundred ids, each then refreshed as
    ``run_lifecycle.refresh`` does one (a metric's history read only where the state needs it); a run gone for
    good leaves the table, so the next ``up`` creates it again. ``stored``: the table's recorded inputs."""
    olds: Mapping[str, Any] = state.get("runs") or {}
    ids = sorted({run["run_id"] for run in olds.values()})
    servers = read_runs(api, state["experiment_id"], ids, max_parallel(stored or {}))
    stored_runs = dict((stored or {}).get("runs") or {})
    runs: dict[str, Any] = {}
    entries: dict[str, Any] | None = dict(stored_runs) if stored is not None else None
    for key, old in olds.items():
        run = servers.get(old["run_id"])
        entry = stored_runs.get(key)
        if run is None:
            if entries is not None:
                entries.pop(key, None)
            continue
        given = run_inputs(stored or state, key, entry) if entry is not None else None
        found = lifecycle.refreshed(api, run, old, given)
        runs[key] = found.outputs
        if entries is not None and entry is not None:
            if found.inputs is None:  # inputs holding assets without their contents cannot be handed back
                entries = None
            else:
                entries[key] = _entry_of(found.inputs, entry)
    inputs = {**stored, "runs": entries} if stored is not None and entries is not None else None
    return Refreshed(state_of(state, runs, state.get("retired") or ()), inputs)


def _entry_of(inputs: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """A run's refreshed inputs as the entry they came from: without the table's keys, the name only if given."""
    out = {k: v for k, v in inputs.items() if k not in (*TABLE_RUN_KEYS, "resource_key")}
    if entry.get("run_name") is None:
        out.pop("run_name", None)
    return out

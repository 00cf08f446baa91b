"""What a change of a ``RunTable`` means, entry by entry: pure and local, as ``run_diff`` is for one run.

An added entry creates its run, a removed one deletes it, a changed one updates or replaces that run alone by
``ExperimentRun``'s rules (``run_diff.diff_run``). Only the experiment or the connection replaces the table
itself; a replace of one run is an update of the table.

The table's state in the core's form: its checked inputs but ``runs``, then ``runs`` (entry key to the run's
outputs, ``run_plan.outputs_for``'s form) and ``retired`` (run ids of replaced entries still to delete).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi_mlflow_runs.core import metrics_file
from pulumi_mlflow_runs.core.definitions import RUN_INPUTS
from pulumi_mlflow_runs.core.run_diff import RunDiff, diff_props, diff_run
from pulumi_mlflow_runs.core.run_spec import is_unknown
from pulumi_mlflow_runs.core.table_spec import TABLE_RUN_KEYS, entry_path, run_inputs

Action = Literal["create", "update", "replace", "delete"]
EntryDiff = Callable[[str, Mapping[str, Any], dict[str, Any]], RunDiff]
"""The rule for entry ``key``: its old run outputs against its new run inputs (``by_run_rules``; the plugin
compares files by the engine's hash, as for an ``ExperimentRun``)."""
_TABLE_PROPS = tuple(p for p in RUN_INPUTS if p.name in TABLE_RUN_KEYS)


def by_run_rules(key: str, olds: Mapping[str, Any], news: dict[str, Any]) -> RunDiff:
    """``ExperimentRun``'s rules (``run_diff.diff_run``), the same for every entry."""
    return diff_run(olds, news)


@dataclass(frozen=True)
class EntryChange:
    action: Action
    verdict: RunDiff = field(default_factory=RunDiff)
    """Which properties of the run update or replace it (none for a create or delete)."""
    unread: bool = False
    """The state a failed step left: the update reads the run first and sends what it lacks."""


@dataclass(frozen=True)
class TableDiff:
    replaces: tuple[str, ...] = ()
    """The table's own properties whose change replaces the whole table (the experiment, the connection)."""
    entries: dict[str, EntryChange] = field(default_factory=dict)
    """Only the entries that change."""
    retired: tuple[str, ...] = ()
    """Runs of replaced entries that a failed step could not delete yet."""

    @property
    def changes(self) -> bool:
        return bool(self.replaces or self.entries or self.retired)


def entry_change(
    key: str, olds: Mapping[str, Any] | None, news: dict[str, Any], rule: EntryDiff = by_run_rules
) -> EntryChange | None:
    """What entry ``key``'s run does: ``olds`` its outputs in the state (None: none yet), ``news`` its run inputs."""
    if olds is None:
        return EntryChange("create")
    verdict = rule(key, olds, news)
    unread = olds.get("run") is None
    if verdict.replaces:
        return EntryChange("replace", verdict, unread)
    if verdict.updates or unread:
        return EntryChange("update", verdict, unread)
    return None


def diff_table(state: Mapping[str, Any], news: Mapping[str, Any], rule: EntryDiff = by_run_rules) -> TableDiff:
    """``state``: the table's state (core form); ``news``: its checked inputs (``table_spec.check_table``)."""
    replaces, _ = diff_props(_TABLE_PROPS, state, news) if state else ([], [])  # ``{}``: a create
    retired = tuple(state.get("retired") or ())
    if replaces:
        return TableDiff(tuple(replaces), retired=retired)
    olds: Mapping[str, Any] = state.get("runs") or {}
    runs = news.get("runs")
    if is_unknown(runs):  # a preview: which entries change is not known yet
        return TableDiff(entries={key: EntryChange("update") for key in olds}, retired=retired)
    runs = runs or {}
    entries: dict[str, EntryChange] = {}
    for key in runs:
        if is_unknown(runs[key]):
            entries[key] = EntryChange("update" if key in olds else "create")
            continue
        change = entry_change(key, olds.get(key), run_inputs(news, key), rule)
        if change is not None:
            entries[key] = change
    entries.update({key: EntryChange("delete") for key in olds if key not in runs})
    return TableDiff(entries=entries, retired=retired)


def file_replace_reason(key: str, state: Mapping[str, Any], news: Mapping[str, Any]) -> str:
    """Why entry ``key``'s metrics file replaces its run, as a lone run's preview says it
    (``metrics_file.replace_reason``): ``state`` the table's (core form), ``news`` its checked inputs."""
    entry = (news.get("runs") or {}).get(key) or {}
    logged = state["runs"][key].get(metrics_file.LOGGED)
    return f"{entry_path(key)}: {metrics_file.replace_reason(logged, entry.get(metrics_file.SUMMARY))}"

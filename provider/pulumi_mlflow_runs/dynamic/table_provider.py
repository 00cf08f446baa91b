"""The dynamic provider behind ``RunTable``: one engine resource for a table of runs, each step the core's
(``core.table_spec``, ``core.table_diff``, ``core.run_table``).

What is this door's own: the state form (``dynamic.table_state``), a Diff that leaves the display to the
engine's own diff of the inputs where that shows every change (so a preview names ``runs`` and, below it, the
entry and its property), and failures. This host cannot report a partial failure: a failed create records
nothing, a failed update keeps the old state. So every run done stays on the server, marked with the table's
key (``core.table_keys``), and the next ``up``'s one search per table takes them over: a complete run that is
exactly what its entry declares is taken back, an unfinished one finished (or deleted where it no longer
fits). The error names each failed entry.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from typing import Any

import pulumi.dynamic as dyn

from pulumi_mlflow_runs.core import state_seen
from pulumi_mlflow_runs.core.artifacts.files import drifted, holds_elided
from pulumi_mlflow_runs.core.errors import InputError
from pulumi_mlflow_runs.core.run_diff import RunDiff, diff_run
from pulumi_mlflow_runs.core.run_lifecycle import now_ms
from pulumi_mlflow_runs.core.run_origin import RunOrigin
from pulumi_mlflow_runs.core.run_spec import is_unknown, known_text
from pulumi_mlflow_runs.core.run_table import apply_table, delete_table, held_runs, refresh_table
from pulumi_mlflow_runs.core.table_diff import EntryChange, diff_table, file_replace_reason
from pulumi_mlflow_runs.core.table_file import with_file_entries
from pulumi_mlflow_runs.core.table_progress import TenthsProgress
from pulumi_mlflow_runs.core.table_spec import check_table, entry_path, max_parallel, summaries_to_reuse
from pulumi_mlflow_runs.dynamic.elided_assets import as_checked, remember_checked, tolerate_elided_assets
from pulumi_mlflow_runs.dynamic.experiment_run import _request_props, _request_urn
from pulumi_mlflow_runs.dynamic.provider_base import BaseProvider, user_facing
from pulumi_mlflow_runs.dynamic.table_state import TABLE_OUTPUTS, core_state, dynamic_state

tolerate_elided_assets()

STATE_OUTPUTS = ("max_parallel", *TABLE_OUTPUTS)
"""Names the program sends as None (its output properties), and ``table_key``, which is an input too."""
_NOT_REFUSED = (*STATE_OUTPUTS, "table_key")


def _files_key(urn: str | None, key: str) -> str | None:
    """Where Check keeps entry ``key``'s assets (``elided_assets``): the engine elides them in later calls."""
    return f"{urn}\0{key}" if urn else None


def _entries(props: Mapping[str, Any]) -> Mapping[str, Any]:
    runs = props.get("runs")
    return runs if isinstance(runs, Mapping) else {}


def _with_files(props: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``props`` with each entry's assets as Check saw them where the engine elided them, and the entries
    whose assets neither gives (their files are then compared by the state's marks alone)."""
    urn = _request_urn()
    runs: dict[str, Any] = {}
    unknown: set[str] = set()
    for key, entry in _entries(props).items():
        if isinstance(entry, Mapping) and entry.get("artifacts") is not None:
            files, known = as_checked(_files_key(urn, key), entry["artifacts"])
            runs[key] = {**entry, "artifacts": files if known else None}
            if not known:
                unknown.add(key)
        else:
            runs[key] = entry
    return ({**props, "runs": runs} if "runs" in props else dict(props)), unknown


def _checked(props: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs of a create or update in normal form (numbers arrive as floats), their assets whole; the
    first failure raised."""
    whole, unknown = _with_files(props)
    if unknown:
        what = entry_path(sorted(unknown)[0], "artifacts")
        raise InputError(what, "the engine sent the assets without their contents; run `pulumi up` again")
    inputs, failures = check_table(whole, _NOT_REFUSED)
    if failures:
        raise InputError(*failures[0])
    return inputs


class RunTableProvider(BaseProvider):
    """The dynamic provider behind ``RunTable``. Constructible with no arguments."""

    @user_facing
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        table_key = known_text(news.get("table_key"))
        state_seen.checked(table_key, in_state=bool(olds))
        news, file_keys, failures = with_file_entries(news)
        # Not handed the engine's hash: an entry's metrics file still holding its old summary is hashed, not parsed.
        reuse = summaries_to_reuse(olds, news)
        inputs, found = check_table(
            news, _NOT_REFUSED, read_files=True, reuse_summaries=reuse, file_keys=file_keys or ()
        )
        failures += found
        urn = _request_urn()
        for key, entry in _entries(news).items():
            if isinstance(entry, Mapping) and entry.get("artifacts") is not None:
                remember_checked(_files_key(urn, key), entry["artifacts"])
        if news.get("table_key") is not None:
            inputs["table_key"] = news["table_key"]
        return dyn.CheckResult(inputs, [dyn.CheckFailure(prop, reason) for prop, reason in failures])

    @user_facing
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        table_key = known_text(olds.get("table_key")) or known_text(news.get("table_key"))
        state = core_state(olds)
        for run_id in held_runs(state):
            state_seen.holds(table_key, run_id)
        whole, unknown = _with_files(news)
        checked, failures = check_table(whole, _NOT_REFUSED)
        use = whole if failures else checked

        def rule(key: str, run_olds: Mapping[str, Any], run_news: dict[str, Any]) -> RunDiff:
            if key not in unknown:
                return diff_run(run_olds, run_news)
            # No Check in this host (a refresh): the files are not hashed, only Read's marks count.
            verdict = diff_run({**run_olds, "artifact_files": None}, {**run_news, "artifacts": None})
            if drifted(run_olds.get("artifact_files")) and "artifacts" not in verdict.updates:
                return RunDiff(verdict.replaces, (*verdict.updates, "artifacts"))
            return verdict

        plan = diff_table(state, use, rule)
        if plan.replaces:
            return dyn.DiffResult(changes=True, replaces=list(plan.replaces), delete_before_replace=False)
        if not plan.changes:
            return dyn.DiffResult(changes=False, replaces=[], delete_before_replace=False)
        _say_replaced(plan.entries, state, use)
        # "Unknown" hands the display to the engine's own diff of the inputs, which names each changed entry
        # and property under ``runs`` (a replaced run shows as its changed property: the table is updated).
        # Only where that diff shows every entry that changes; otherwise a plain "some".
        sees = not plan.retired and _engine_sees(news, plan.entries, unknown)
        return dyn.DiffResult(changes=None if sees else True, replaces=[], delete_before_replace=False)

    @user_facing
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        inputs = _checked(props)
        table_key = str(props["table_key"])
        held = state_seen.state_runs(table_key)
        api = self.api_for(inputs)
        applied = apply_table(api, inputs, {}, table_key, now_ms(), held=held, progress=_progress(), origin=_origin())
        return dyn.CreateResult(uuid.uuid4().hex, dynamic_state(applied.state, inputs, table_key))

    @user_facing
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        if "run_ids" not in props:
            raise InputError("runs", "reading an existing RunTable (`get`, `import`) is not supported in this version")
        table_key = str(props.get("table_key"))
        core = core_state(props)
        for run_id in held_runs(core):
            state_seen.holds(table_key, run_id)
        request = _request_props("inputs")
        stored = check_table(request, _NOT_REFUSED)[0] if request is not None else None
        fresh = refresh_table(self.api_for(core), core, stored)
        recorded = fresh.inputs if fresh.inputs is not None else (stored or props)
        outputs = dynamic_state(fresh.state, {**recorded, "max_parallel": props.get("max_parallel")}, table_key)
        # Inputs holding a runs file without its contents cannot be handed back: the engine keeps them as they were.
        kept = fresh.inputs is None or request is None or holds_elided(fresh.inputs.get("runs_file"))
        inputs = None if kept else {**(fresh.inputs or {}), "table_key": table_key}
        return dyn.ReadResult(id_, outputs, inputs=inputs)

    @user_facing
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        inputs = _checked(news)
        table_key = known_text(olds.get("table_key")) or str(news["table_key"])
        state = core_state(olds)
        applied = apply_table(
            self.api_for(inputs), inputs, state, table_key, now_ms(), progress=_progress(), origin=_origin()
        )
        return dyn.UpdateResult(dynamic_state(applied.state, inputs, table_key))

    @user_facing
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        core = core_state(props)
        delete_table(self.api_for(core), core, max_parallel(props))


def _origin() -> RunOrigin | None:
    """The table, from the URN of the engine's request this host serves (``core.run_origin``)."""
    return RunOrigin.of_urn(_request_urn())


def _progress() -> TenthsProgress:
    """Lines on this host's stderr, which the engine shows during a long ``up``: this host has no other way to
    the engine's log."""
    return TenthsProgress(lambda line: print(line, file=sys.stderr, flush=True))


def _say_replaced(entries: Mapping[str, EntryChange], state: Mapping[str, Any], news: Mapping[str, Any]) -> None:
    """A line per replaced run on this host's stderr, which the engine shows: the inputs' diff shows only the
    changed property, not that it takes a new run (a replace kind would replace the whole table)."""
    for key, change in sorted(entries.items()):
        if change.action == "replace":
            why = ", ".join(change.verdict.replaces)
            old = state["runs"][key]["run_id"]
            print(
                f"RunTable: {entry_path(key)} is replaced: a new run, and its old run {old} is deleted ({why} "
                "changed, which MLflow cannot change in place)",
                file=sys.stderr,
                flush=True,
            )
            if "metrics_file" in change.verdict.replaces:
                print(f"RunTable: {file_replace_reason(key, state, news)}", file=sys.stderr, flush=True)


def _engine_sees(news: Mapping[str, Any], entries: Mapping[str, EntryChange], unknown: set[str]) -> bool:
    """True if the engine's own diff of the old and new inputs changes each entry of ``entries``: an entry
    the inputs show no change for (a run a refresh found changed, or a file gone) needs a plain "some"."""
    old_inputs = _request_props("old_inputs")
    files = any("artifacts" in change.verdict.updates for change in entries.values())
    if old_inputs is None or files or unknown & set(entries):
        return False
    olds, runs = _entries(old_inputs), _entries(news)
    return all(is_unknown(runs.get(key)) or olds.get(key) != runs.get(key) for key in entries)

"""``mlflow-runs:index:RunTable`` on the plugin: one engine resource for a table of runs, each step the core's
(``core.table_spec``, ``core.table_diff``, ``core.run_table``).

What is the plugin's own: the state form (``native.table_state``), the detailed diff (each entry's paths as an
``ExperimentRun``'s, under ``runs["<key>"]``, files by the engine's hash), and a partial failure reported as a
partial state, so the next ``up`` finishes only the runs that failed. A replace of one run is an update of the
table: its paths are shown as updates (a replace kind would make the engine replace the whole table), and a
line in the engine's log says which run is replaced and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from pulumi_mlflow_runs.core import state_seen
from pulumi_mlflow_runs.core.artifacts.files import drifted
from pulumi_mlflow_runs.core.definitions import METRICS_FILE_SUMMARY, camel
from pulumi_mlflow_runs.core.errors import InputError
from pulumi_mlflow_runs.core.resource_key import of_urn
from pulumi_mlflow_runs.core.run_diff import RunDiff, diff_run
from pulumi_mlflow_runs.core.run_lifecycle import now_ms
from pulumi_mlflow_runs.core.run_origin import RunOrigin
from pulumi_mlflow_runs.core.run_table import TableFailed, apply_table, delete_table, held_runs, refresh_table
from pulumi_mlflow_runs.core.table_definitions import TABLE_OUTPUTS, TABLE_WIRE_INPUTS, WIRE_ENTRY
from pulumi_mlflow_runs.core.table_diff import EntryChange, diff_table, file_replace_reason
from pulumi_mlflow_runs.core.table_file import with_file_entries
from pulumi_mlflow_runs.core.table_import import import_table
from pulumi_mlflow_runs.core.table_progress import TenthsProgress
from pulumi_mlflow_runs.core.table_spec import check_table, entry_path, max_parallel, summaries_to_reuse
from pulumi_mlflow_runs.native import diff as detail
from pulumi_mlflow_runs.native.handler import KEPT, ApiFor, Change, Found, Props, Session
from pulumi_mlflow_runs.native.names import camel_path
from pulumi_mlflow_runs.native.schema import TABLE_TOKEN
from pulumi_mlflow_runs.native.state import as_uploaded
from pulumi_mlflow_runs.native.table_state import core_table_state, plugin_table_state
from pulumi_mlflow_runs.native.wire import same_engine_hash

_OUTPUT_NAMES = tuple(p.name for p in TABLE_OUTPUTS)
_ECHOING = {"run_states", "latest_metrics"}
"""Outputs that hold values of the entries (the server's view of each run, its metrics): secret with ``runs``."""


def _entry_name(prop: str) -> str:
    return camel_path(prop, WIRE_ENTRY.fields)


def _without_files(table: Mapping[str, Any]) -> dict[str, Any]:
    """The table with no entry's ``artifacts``: Diff is handed assets without contents, compared by hash apart."""
    runs = table.get("runs")
    if not isinstance(runs, Mapping):
        return dict(table)
    return {**table, "runs": {k: {**e, "artifacts": None} if isinstance(e, Mapping) else e for k, e in runs.items()}}


def _same_runs_file(news: Mapping[str, Any], olds: Mapping[str, Any]) -> bool:
    unchanged = same_engine_hash(olds.get("runs_file"), news.get("runs_file"))
    return unchanged and news.get("runs") is None and "runs" in olds


def _but_file(table: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k != "runs_file"}


def _checked(props: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as the engine hands them to create/update, in normal form; the first failure raised."""
    inputs, failures = check_table(props, _OUTPUT_NAMES, name=_entry_name)
    if failures:
        raise InputError(*failures[0])
    return inputs


def _normal(props: Mapping[str, Any]) -> dict[str, Any]:
    """Old inputs in normal form, whatever Check would say of them now."""
    return check_table(props, _OUTPUT_NAMES)[0]


def _entry(table: Mapping[str, Any], key: str) -> dict[str, Any]:
    entry = (table.get("runs") or {}).get(key)
    return dict(entry) if isinstance(entry, Mapping) else {}


def _with_summaries(added: Props, checked: Mapping[str, Any]) -> Props:
    """``added`` with what Check read of each entry's metrics file (``runs["<key>"].metricsFileSummary``), which
    the engine then hands every later step beside the entry as sent."""
    runs = checked.get("runs")
    summaries = {
        key: entry[METRICS_FILE_SUMMARY.name]
        for key, entry in (runs.items() if isinstance(runs, Mapping) else ())
        if isinstance(entry, Mapping) and entry.get(METRICS_FILE_SUMMARY.name) is not None
    }
    if not summaries:
        return added
    entries = dict(added.get("runs") or {})
    for key, summary in summaries.items():
        entries[key] = {**(entries.get(key) or {}), METRICS_FILE_SUMMARY.name: summary}
    return {**added, "runs": entries}


class TableHandler:
    token = TABLE_TOKEN
    props = (*TABLE_WIRE_INPUTS, *TABLE_OUTPUTS)
    computed = TABLE_OUTPUTS

    def check(self, urn: str, news: Props, olds: Mapping[str, Any]) -> tuple[Props, list[tuple[str, str]]]:
        state_seen.checked(of_urn(urn), in_state=bool(olds))
        if _same_runs_file(news, olds):
            # Every entry is the runs file's, and the engine's hash says the file is the one the state's entries
            # were read from: they stand as checked then, and only the table's own inputs are checked again.
            failures = check_table({**news, "runs": {}}, _OUTPUT_NAMES, name=_entry_name)[1]
            return {"runs": KEPT}, failures
        news, file_keys, failures = with_file_entries(news)
        # An entry's metrics file whose hash the engine says is unchanged is not read again: its summary stands.
        reuse = summaries_to_reuse(olds, news, same_engine_hash)
        checked, found = check_table(
            news, _OUTPUT_NAMES, read_files=True, reuse_summaries=reuse, name=_entry_name, file_keys=file_keys or ()
        )
        failures += found
        # A runs file's entries go to the engine as the table's `runs`: what every later step reads.
        added = {"runs": news["runs"]} if file_keys is not None else {}
        return _with_summaries(added, checked), failures

    def diff(self, urn: str, id_: str, olds: Props, old_inputs: Props, news: Props) -> Change:
        table_key = str(olds.get("table_key") or of_urn(urn))
        old_plain, new_plain = _without_files(old_inputs), _without_files(news)
        old_in, old_failures = check_table(old_plain, _OUTPUT_NAMES)
        state = core_table_state(olds, old_in)
        for run_id in held_runs(state):
            state_seen.holds(table_key, run_id)
        # Inputs as they were (every preview of an unchanged table): checked once, not twice. The runs file is an
        # asset (compared by identity); its entries, in `runs`, are what counts.
        same = _but_file(new_plain) == _but_file(old_plain)
        checked, failures = (old_in, old_failures) if same else check_table(new_plain, _OUTPUT_NAMES)
        use = new_plain if failures else checked

        def files(key: str, run_olds: Mapping[str, Any]) -> dict[str, detail.Kind]:
            old_files = as_uploaded(_entry(old_inputs, key).get("artifacts"), run_olds.get("artifact_files"))
            found = detail.artifact_diff(old_files, _entry(news, key).get("artifacts"))
            if not found and drifted(run_olds.get("artifact_files")):
                found = {"artifacts": detail.UPDATE}
            return found

        def rule(key: str, run_olds: Mapping[str, Any], run_news: dict[str, Any]) -> RunDiff:
            verdict = diff_run({**run_olds, "artifact_files": None}, {**run_news, "artifacts": None})
            extra = ("artifacts",) if files(key, run_olds) and "artifacts" not in verdict.updates else ()
            return RunDiff(verdict.replaces, (*verdict.updates, *extra))

        plan = diff_table(state, use, rule)
        if plan.replaces:
            replacing = detail.detailed(plan.replaces, plan.replaces, old_inputs, news)
            return Change(replaces=plan.replaces, diffs=plan.replaces, paths=replacing, old_inputs=old_inputs)
        paths: dict[str, detail.Kind] = {}
        notes: list[str] = []
        for key, change in sorted(plan.entries.items()):
            paths.update(self._entry_paths(key, change, old_inputs, news, state))
            if change.action == "replace":
                why = ", ".join(camel(k) for k in change.verdict.replaces)
                notes.append(
                    f"{entry_path(key)} is replaced: a new run, and its old run {state['runs'][key]['run_id']} is "
                    f"deleted ({why} changed, which MLflow cannot change in place)"
                )
                if "metrics_file" in change.verdict.replaces:
                    notes.append(file_replace_reason(key, state, use))
        unread = any(change.unread for change in plan.entries.values())
        return Change(
            diffs=("runs",) if paths else (),
            paths=paths,
            old_inputs=old_inputs,
            rewrite=bool(plan.retired) or unread,
            notes=tuple(notes),
        )

    def _entry_paths(
        self, key: str, change: EntryChange, old_inputs: Props, news: Props, state: Mapping[str, Any]
    ) -> dict[str, detail.Kind]:
        """The entry's paths under ``runs["<key>"]``, as an ``ExperimentRun``'s detailed diff names them."""
        head = entry_path(key)
        if change.action in ("create", "delete"):
            return {head: detail.ADD if change.action == "create" else detail.DELETE}
        old, new = _entry(old_inputs, key), _entry(news, key)
        changed = [k for k in (*change.verdict.replaces, *change.verdict.updates) if k != "artifacts"]
        found = detail.detailed(changed, (), {**old, "lifecycle_stage": None}, new)
        if "artifacts" in change.verdict.updates:
            old_files = as_uploaded(old.get("artifacts"), state["runs"][key].get("artifact_files"))
            found.update(detail.artifact_diff(old_files, new.get("artifacts")) or {"artifacts": detail.UPDATE})
        if not found:
            return {head: detail.UPDATE} if not change.unread else {}
        return {f"{head}.{path}": kind for path, kind in found.items()}

    def create(self, api_for: ApiFor, urn: str, props: Props, *, session: Session) -> tuple[str, Props]:
        inputs = _checked(props)
        table_key = of_urn(urn)
        table_id = uuid.uuid4().hex
        held = state_seen.state_runs(table_key)
        return table_id, _applied(api_for, inputs, {}, table_key, table_id=table_id, session=session, held=held)

    def read(self, api_for: ApiFor, id_: str, state: Props, stored: Props, *, urn: str) -> Found | None:
        if not state:  # `pulumi import`: the runs the id names, as a table
            found = import_table(api_for({}), id_)
            assert found.inputs is not None
            return Found(plugin_table_state(found.state, found.inputs, of_urn(urn)), found.inputs)
        old_in = _normal(stored) if stored else {}
        core = core_table_state(state, old_in)
        fresh = refresh_table(api_for(core), core, old_in if stored else None)
        recorded = fresh.inputs if fresh.inputs is not None else old_in
        outputs = plugin_table_state(fresh.state, recorded, str(state.get("table_key")))
        return Found(outputs, fresh.inputs)

    def update(
        self, api_for: ApiFor, id_: str, olds: Props, old_inputs: Props, news: Props, *, session: Session
    ) -> Props:
        inputs = _checked(news)
        table_key = str(olds["table_key"])
        state = core_table_state(olds, _normal(old_inputs))
        return _applied(api_for, inputs, state, table_key, table_id=id_, session=session)

    def delete(self, api_for: ApiFor, id_: str, state: Props, old_inputs: Props) -> str | None:
        """Every run, at most the table's ``maxParallel`` at a time (what the server was sized for), as writes."""
        core = core_table_state(state, {})
        notes = delete_table(api_for(core), core, max_parallel(old_inputs))
        return "; ".join(notes) or None

    def secret_outputs(self, secret_inputs: set[str]) -> set[str]:
        """Each secret input itself, and the outputs that hold the entries' values when ``runs`` is secret."""
        return secret_inputs | (_ECHOING if "runs" in secret_inputs else set())

    def partial_state(self, left: Props) -> Props:
        """The table as a failed step left it: ``left`` holds its id (``run_id``, the name the protocol reads)
        and the plugin's state, made where the inputs were at hand."""
        return dict(left["state"])


def _applied(
    api_for: ApiFor,
    inputs: Props,
    state: Mapping[str, Any],
    table_key: str,
    *,
    table_id: str,
    session: Session,
    held: Collection[str] | None = None,
) -> Props:
    """The table after its create or update: its progress in the engine's log, stopped by a Ctrl-C, each run named
    after the table's resource; a partial failure answers with the table as it is."""
    try:
        applied = apply_table(
            api_for(inputs),
            inputs,
            state,
            table_key,
            now_ms(),
            held=held,
            progress=TenthsProgress(session.say),
            stop=session.stop,
            origin=RunOrigin.of_urn(session.urn),
        )
    except TableFailed as exc:
        exc.left_behind = {"run_id": table_id, "state": plugin_table_state(exc.state, inputs, table_key)}
        raise
    return plugin_table_state(applied.state, inputs, table_key)

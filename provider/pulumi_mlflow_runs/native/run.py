"""``mlflow-runs:index:ExperimentRun`` on the plugin: the lifecycle reads top to bottom, each step the core's.

The rules are the core's (``run_spec``, ``run_diff``, ``run_lifecycle``), as on the dynamic door; what is the
plugin's own is its state form (``native.state``: the inputs plus the timestamps it chose, instead of every
point again) and its detailed diff (``native.diff``: the path of each change, files by the engine's hash).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core import metrics_file, run_spec, state_seen
from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core.artifacts.files import drifted
from pulumi_mlflow_runs.core.definitions import METRICS_FILE_SUMMARY
from pulumi_mlflow_runs.core.resource_key import input_of_urn
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_origin import RunOrigin
from pulumi_mlflow_runs.native import diff as detail
from pulumi_mlflow_runs.native.handler import ApiFor, Change, Found, Props, Session
from pulumi_mlflow_runs.native.schema import RUN_TOKEN
from pulumi_mlflow_runs.native.state import (
    RUN_PROPS,
    STATE_OUTPUTS,
    as_uploaded,
    plugin_state,
    run_state,
    unread_form,
)
from pulumi_mlflow_runs.native.wire import same_engine_hash

_OUTPUT_NAMES = tuple(p.name for p in STATE_OUTPUTS)
_ECHOED = {**run_spec.ECHOED_IN, "logged_points": ("metrics",), METRICS_FILE_SUMMARY.name: ("metrics_file",)}
"""Outputs that repeat inputs under another name: the core's, and the points of a state in columns."""


class RunHandler:
    token = RUN_TOKEN
    props = RUN_PROPS
    computed = STATE_OUTPUTS

    def check(self, urn: str, news: Props, olds: Mapping[str, Any]) -> tuple[Props, list[tuple[str, str]]]:
        state_seen.checked(input_of_urn(urn), in_state=bool(olds))
        # A metrics file whose hash the engine says is unchanged is not read again: its summary stands.
        unchanged = same_engine_hash(olds.get("metrics_file"), news.get("metrics_file"))
        reuse = run_spec.summary_to_reuse(olds, news, engine_unchanged=unchanged) if unchanged else None
        inputs, failures = run_spec.check_inputs(news, _OUTPUT_NAMES, read_files=True, reuse_summary=reuse)
        added = {k: inputs[k] for k in run_spec.CHECKED_KEYS if k in inputs}
        return added, failures

    def diff(self, urn: str, id_: str, olds: Props, old_inputs: Props, news: Props) -> Change:
        state_seen.holds(input_of_urn(urn), id_)
        state = run_state(olds, old_inputs)
        # Files are compared by the engine's hash of each asset, old inputs against new (no contents here);
        # a file refresh found gone or changed is sent again.
        old_files = as_uploaded(old_inputs.get("artifacts"), state.get("artifact_files"))
        files = detail.artifact_diff(old_files, news.get("artifacts"))
        if not files and drifted(state.get("artifact_files")):
            files = {"artifacts": detail.UPDATE}
        state["artifact_files"], news["artifacts"] = None, None
        # The normal form the state was written from (Check keeps the inputs raw).
        checked, failures = run_spec.check_inputs(news, _OUTPUT_NAMES)
        verdict = diff_run(state, news if failures else checked)
        changed = [k for k in (*verdict.replaces, *verdict.updates) if k != "artifacts"]
        paths = detail.detailed(changed, verdict.replaces, {**old_inputs, "lifecycle_stage": None}, news)
        paths.update(files)
        notes: tuple[str, ...] = ()
        if "metrics_file" in verdict.replaces:
            notes = (metrics_file.replace_reason(state.get(metrics_file.LOGGED), news.get(metrics_file.SUMMARY)),)
        return Change(
            notes=notes,
            replaces=verdict.replaces,
            diffs=tuple(sorted({*changed, *(["artifacts"] if files else [])})),
            paths=paths,
            old_inputs=old_inputs,
            rewrite=state.get("run") is None,
        )

    def create(self, api_for: ApiFor, urn: str, props: Props, *, session: Session) -> tuple[str, Props]:
        inputs = lifecycle.checked_inputs(props, _OUTPUT_NAMES)
        inputs["resource_key"] = input_of_urn(urn)
        declared = list(inputs.get("metrics") or [])
        held = state_seen.state_runs(inputs["resource_key"])
        origin = RunOrigin.of_urn(urn)
        run_id, outputs = lifecycle.create(api_for(inputs), inputs, lifecycle.now_ms(), state_runs=held, origin=origin)
        return run_id, plugin_state(outputs, declared)

    def read(self, api_for: ApiFor, id_: str, state: Props, stored: Props, *, urn: str) -> Found | None:
        api = api_for(state or stored)
        whole = "logged_points" in state
        if not state:  # `pulumi import` or a `.get`: no state yet, the run described as inputs
            found = lifecycle.read_existing(api, id_)
            declared = list(((found.inputs or {}).get("metrics") or []) if found else [])
        else:
            olds = run_state(state, stored)
            declared = run_spec.checked_points(stored.get("metrics")) or []
            # Unread (a failed step's, or stamps that do not fit): the refresh reads every point from the
            # server, and what a failed step logged need not fit the stored inputs.
            whole = whole or olds.get("run") is None
            found = lifecycle.refresh(api, id_, olds, stored or None)
        if found is None:
            return None  # gone for good: the engine drops it from state
        # A state that holds every logged point (moved, or read whole) keeps that form until an update.
        outputs = unread_form(found.outputs) if whole else plugin_state(found.outputs, declared)
        return Found(outputs, found.inputs)

    def update(
        self, api_for: ApiFor, id_: str, olds: Props, old_inputs: Props, news: Props, *, session: Session
    ) -> Props:
        inputs = lifecycle.checked_inputs(news, _OUTPUT_NAMES)
        declared = list(inputs.get("metrics") or [])
        state = run_state(olds, old_inputs)
        outputs = lifecycle.update(api_for(inputs), id_, state, inputs, lifecycle.now_ms())
        return plugin_state(outputs, declared)

    def delete(self, api_for: ApiFor, id_: str, state: Props, old_inputs: Props) -> str | None:
        return lifecycle.delete(api_for(state), id_)

    def secret_outputs(self, secret_inputs: set[str]) -> set[str]:
        """Each secret input itself, and every output that repeats one (``run``, ``latest_metrics``, ...)."""
        return secret_inputs | {out for out, keys in _ECHOED.items() if secret_inputs & set(keys)}

    def partial_state(self, left: Props) -> Props:
        return unread_form(left)

"""The plugin's state of a ``RunTable``, and the core's form it is read back into.

Per entry, the state keeps what an ``ExperimentRun`` of the plugin keeps (``native.state``) less what repeats an
input (the engine hands Diff, Update and Read the old inputs) or another output (``runIds``, ``latestMetrics``).
A run a failed step left (``run`` None) keeps its whole unread form instead: its points as logged, which the
inputs cannot give. The table's own outputs: ``runIds``, ``latestMetrics``, ``tableKey`` (its runs' mark),
``retiredRunIds``, and the experiment and connection under their input names (Delete is handed the outputs
alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS, NOT_ECHOED_KEYS
from pulumi_mlflow_runs.core.table_spec import TABLE_RUN_KEYS, run_inputs
from pulumi_mlflow_runs.native.names import convert
from pulumi_mlflow_runs.native.state import RUN_PROPS, plugin_state, run_state, unread_form

_REPEATS = frozenset({*INPUT_KEYS, "run_id", "latest_metrics"})
_ECHOED = tuple(k for k in INPUT_KEYS if k not in NOT_ECHOED_KEYS)


def _declared(inputs: Mapping[str, Any], key: str) -> list[Any] | None:
    entry = (inputs.get("runs") or {}).get(key)
    return None if not isinstance(entry, Mapping) else list(entry.get("metrics") or [])


def _stored_run(outputs: Mapping[str, Any], declared: list[Any] | None) -> dict[str, Any]:
    if outputs.get("run") is None or declared is None:  # unread, or its entry is gone from the inputs
        form = unread_form(outputs)
    else:
        form = {k: v for k, v in plugin_state(outputs, declared).items() if k not in _REPEATS and v is not None}
    return convert(form, RUN_PROPS, to_snake=False)


def plugin_table_state(state: Mapping[str, Any], inputs: Mapping[str, Any], table_key: str) -> dict[str, Any]:
    """The core's table state (``table_diff``'s form) as the plugin stores it; ``inputs``: the checked inputs
    the engine records beside it (their points, with the stamps kept here, are every point as logged)."""
    runs: Mapping[str, Any] = state.get("runs") or {}
    return {
        **{k: state.get(k) for k in TABLE_RUN_KEYS},
        "run_ids": {key: run["run_id"] for key, run in runs.items()},
        "latest_metrics": {key: run.get("latest_metrics") or {} for key, run in runs.items()},
        "table_key": table_key,
        "run_states": {key: _stored_run(run, _declared(inputs, key)) for key, run in runs.items()},
        "retired_run_ids": list(state.get("retired") or ()),
    }


def core_table_state(olds: Mapping[str, Any], old_inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's stored table (``olds``) in the core's form, each run's inputs from ``old_inputs`` (checked)."""
    stored: Mapping[str, Any] = olds.get("run_states") or {}
    latest: Mapping[str, Any] = olds.get("latest_metrics") or {}
    entries: Mapping[str, Any] = old_inputs.get("runs") or {}
    table = {**old_inputs, **{k: olds.get(k) for k in TABLE_RUN_KEYS if olds.get(k) is not None}}
    runs: dict[str, Any] = {}
    for key, run_id in (olds.get("run_ids") or {}).items():
        kept = convert(stored.get(key) or {}, RUN_PROPS, to_snake=True)
        given = run_inputs(table, key) if isinstance(entries.get(key), Mapping) else {}
        if "logged_points" in kept:
            runs[key] = run_state({**kept, "run_id": run_id}, given)
        else:
            echoed = {k: given.get(k) for k in _ECHOED}
            runs[key] = run_state({**echoed, **kept, "run_id": run_id, "latest_metrics": latest.get(key)}, given)
    return {
        **{k: table.get(k) for k in TABLE_RUN_KEYS},
        "runs": runs,
        "retired": list(olds.get("retired_run_ids") or ()),
    }

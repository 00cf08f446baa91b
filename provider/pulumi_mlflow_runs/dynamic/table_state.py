"""The dynamic door's state of a ``RunTable``, and the core's form it is read back into.

This host hands Diff only the old outputs (and Delete only them), so the state holds every run whole, as an
``ExperimentRun`` of this door keeps it (``core.state.with_columns``: every logged point, in columns), less
what the table holds once: the experiment and the connection, each run's id (``run_ids``) and latest metrics
(``latest_metrics``). The table's own outputs: ``table_key`` (its runs' mark), ``max_parallel`` (Delete's
bound) and ``retired_run_ids`` (runs of replaced entries a failed step could not delete yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core.state import from_state, with_columns
from pulumi_mlflow_runs.core.table_spec import TABLE_RUN_KEYS

TABLE_OUTPUTS = ("run_ids", "latest_metrics", "run_states", "retired_run_ids", "table_key")
"""The outputs the state holds besides the table's inputs (``run_states``: each run, as described above)."""
_ONCE = frozenset({*TABLE_RUN_KEYS, "run_id", "latest_metrics"})


def dynamic_state(state: Mapping[str, Any], inputs: Mapping[str, Any], table_key: str) -> dict[str, Any]:
    """The core's table state (``core.table_diff``'s form) as this door stores it; ``inputs`` the checked ones."""
    runs: Mapping[str, Any] = state.get("runs") or {}
    return {
        **{k: inputs.get(k) for k in TABLE_RUN_KEYS},
        "max_parallel": inputs.get("max_parallel"),
        "table_key": table_key,
        "run_ids": {key: run["run_id"] for key, run in runs.items()},
        "latest_metrics": {key: run.get("latest_metrics") or {} for key, run in runs.items()},
        "run_states": {
            key: {k: v for k, v in with_columns(run).items() if k not in _ONCE} for key, run in runs.items()
        },
        "retired_run_ids": list(state.get("retired") or ()),
    }


def core_state(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The stored table (``outputs``) in the core's form: each run's outputs whole again."""
    table = {k: outputs.get(k) for k in TABLE_RUN_KEYS}
    stored: Mapping[str, Any] = outputs.get("run_states") or {}
    latest: Mapping[str, Any] = outputs.get("latest_metrics") or {}
    runs = {
        key: from_state({**(stored.get(key) or {}), **table, "run_id": run_id, "latest_metrics": latest.get(key)})
        for key, run_id in (outputs.get("run_ids") or {}).items()
    }
    return {**table, "runs": runs, "retired": list(outputs.get("retired_run_ids") or ())}

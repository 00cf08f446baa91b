"""Runs that exist already taken into a table (``pulumi import`` of a ``RunTable``): which runs an import id names,
the key each gets, and the table's inputs and state that describe them, so that the code the CLI prints from them
previews no change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core.errors import InputError
from pulumi_mlflow_runs.core.run_lifecycle import described
from pulumi_mlflow_runs.core.run_table import Refreshed, read_runs, state_of
from pulumi_mlflow_runs.core.table_spec import MAX_PARALLEL_DEFAULT, TABLE_RUN_KEYS

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import MlflowApi

IMPORT_FORMS = "`<experiment id>` (its active runs) or `<experiment id>:<run id>,<run id>,...` (those runs)"


def parse_import_id(import_id: str) -> tuple[str, list[str] | None]:
    """``(experiment id, run ids or None for every active run)``, or an ``InputError`` giving the forms."""
    experiment_id, colon, listed = import_id.partition(":")
    ids = [part.strip() for part in listed.split(",") if part.strip()]
    if not experiment_id.strip() or (colon and not ids) or len(set(ids)) != len(ids):
        raise InputError("runs", f"the import id {import_id!r} is not one of {IMPORT_FORMS}")
    return experiment_id.strip(), ids or None


def entry_keys(runs: Sequence[m.Run]) -> dict[str, m.Run]:
    """Each run under its name where no other run of the import has that name; otherwise (or nameless) under
    its name and the start of its id, which no other run shares."""
    names = Counter(run.info.run_name or "" for run in runs)
    keyed: dict[str, m.Run] = {}
    for run in runs:
        name = run.info.run_name or ""
        key = name if name and names[name] == 1 else _with_id(name or "run", run.info.run_id, runs)
        keyed[key] = run
    return dict(sorted(keyed.items()))


def _with_id(name: str, run_id: str, runs: Sequence[m.Run]) -> str:
    for size in (8, 12, len(run_id)):
        if sum(r.info.run_id.startswith(run_id[:size]) for r in runs) == 1:
            return f"{name}-{run_id[:size]}"
    return f"{name}-{run_id}"


def import_table(api: MlflowApi, import_id: str) -> Refreshed:
    """The table of the runs ``import_id`` names: its inputs (each run as an entry, the name given only where
    the key is not the name) and its state (each run as an ``ExperimentRun`` import reads it)."""
    from pulumi_mlflow_runs.core import models as m

    experiment_id, wanted = parse_import_id(import_id)
    server = api.transport.connection.base_url
    if wanted is None:
        search = m.SearchRuns(experiment_ids=[experiment_id], run_view_type="ACTIVE_ONLY")
        runs = list(api.search_runs(search))
        if not runs:
            raise InputError("runs", f"experiment {experiment_id} on {server} has no active run to import")
    else:
        found = read_runs(api, experiment_id, wanted)
        for run_id in wanted:
            run = found.get(run_id)
            if run is None:
                raise InputError("runs", f"no run {run_id} in experiment {experiment_id} on {server}")
            if run.info.lifecycle_stage == "deleted":
                raise InputError("runs", f"run {run_id} is deleted: restore it first, or leave it out of the import")
        runs = [found[run_id] for run_id in wanted]
    keyed = entry_keys(runs)
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL_DEFAULT, thread_name_prefix="table-import") as pool:
        found_runs = dict(zip(keyed, pool.map(lambda run: described(api, run), keyed.values()), strict=True))
    entries = {key: _entry(found.inputs or {}, key) for key, found in found_runs.items()}
    inputs = {"experiment_id": experiment_id, "runs": entries}
    return Refreshed(state_of(inputs, {key: found.outputs for key, found in found_runs.items()}), inputs)


def _entry(adopted: Mapping[str, Any], key: str) -> dict[str, Any]:
    entry = {k: v for k, v in adopted.items() if k not in TABLE_RUN_KEYS}
    if entry.get("run_name") == key:
        del entry["run_name"]
    return entry

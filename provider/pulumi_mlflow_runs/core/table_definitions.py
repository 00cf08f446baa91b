"""A ``RunTable``'s properties, declared once as ``core.definitions`` declares a run's: the schema, the wire names
(camelCase, nested entries too) and the reference read them from here."""

from __future__ import annotations

import dataclasses

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.table_spec import MAX_PARALLEL_DEFAULT, MAX_PARALLEL_LIMIT, TABLE_RUN_KEYS

_ENTRY_FIELDS = tuple(
    # No change rule in the schema: one of a field would make the engine replace the whole table
    # (``replaceOnChanges``); which change replaces an entry's run is the table's to say (``core.table_diff``).
    dataclasses.replace(p, change=None)
    for p in (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY)
    if p.name not in TABLE_RUN_KEYS
)
RUN_TABLE_ENTRY = d.Prop(
    "run_table_entry",
    "object",
    "One run of the table: what an `ExperimentRun` takes besides the experiment and the connection, which the "
    "table gives once. `runName` defaults to the entry's key.",
    type_name="RunTableEntry",
    fields=_ENTRY_FIELDS,
)
WIRE_ENTRY = d.Prop(
    RUN_TABLE_ENTRY.name,
    "object",
    RUN_TABLE_ENTRY.description,
    type_name=RUN_TABLE_ENTRY.type_name,
    fields=(
        *_ENTRY_FIELDS,
        d.METRICS_FILE_SUMMARY,
        *(p for p in d.RUN_INPUTS if p.name in TABLE_RUN_KEYS),
    ),
)
"""The entry as it travels: with what Check adds (a metrics file's summary: no program sets it, so not in the
schema) and the table's own inputs, so that Check names one given in an entry by its own name."""


def _runs(entry: d.Prop) -> d.Prop:
    return d.Prop(
        "runs",
        "map",
        "The table's runs by a key you choose (the run's name unless the entry gives `runName`). An added entry "
        "creates its run, a removed one deletes it, a changed one updates or replaces that run alone, by "
        "`ExperimentRun`'s rules: a replace of one run is an update of the table. Required unless `runsFile` "
        "gives the entries; with both, each key is in one of them.",
        items=entry,
        change=None,
    )


_RUNS_FILE = d.Prop(
    "runs_file",
    "asset",
    "The table's entries from a file (a FileAsset, its path relative to the program's folder), read by the "
    "provider at each preview and `up`: YAML or JSON (`.yaml`, `.yml`, `.json`), a map from an entry's key to the "
    "entry as in `runs`; or CSV, a row per run: `key` (or `runName`), `params.<name>`, `tags.<name>`, "
    "`metrics.<name>` (one point at step 0) and the entry's plain properties by name; an empty cell is no value. "
    "Its entries are the table's as if written in `runs` (the state, the diff and every step): a thousand "
    "entries cost a preview no work in the program's language.",
)


_SERVER = tuple(p for p in d.RUN_INPUTS if p.name in TABLE_RUN_KEYS)
_MAX_PARALLEL = d.Prop(
    "max_parallel",
    "integer",
    f"Requests in flight for the table's writes (1-{MAX_PARALLEL_LIMIT}, default {MAX_PARALLEL_DEFAULT}, which "
    "suits a one-worker server); raise it for a server with more workers.",
)
TABLE_INPUTS: tuple[d.Prop, ...] = (*_SERVER, _runs(RUN_TABLE_ENTRY), _RUNS_FILE, _MAX_PARALLEL)
"""The schema's inputs: the experiment and the connection (a change replaces the table), the runs (in the program,
in a file, or both), the bound."""
TABLE_WIRE_INPUTS: tuple[d.Prop, ...] = (*_SERVER, _runs(WIRE_ENTRY), _RUNS_FILE, _MAX_PARALLEL)

TABLE_OUTPUTS: tuple[d.Prop, ...] = (
    d.Prop("run_ids", "map", "The run id of each entry, by its key.", items=d.Prop("id", "string", "")),
    d.Prop(
        "latest_metrics",
        "map",
        "Each entry's latest value per metric key, by its key.",
        items=d.Prop("metrics", "map", "", items=d.Prop("value", "number", "")),
    ),
    d.Prop(
        "table_key",
        "string",
        "What the table's runs are marked with: their `pulumi.resource_key` tag is `<tableKey>.<a digest of the "
        "entry key>` (from the table's URN, so a failed or killed `up`'s runs are found and finished).",
    ),
    d.Prop(
        "run_states",
        "any",
        "Per entry, what the state needs of its run beyond the inputs and the outputs above: the `ExperimentRun` "
        "state of the plugin (`artifactUri`, `lifecycleStage`, `userId`, `run`, `stampedAt`, ...) without what "
        "repeats an input.",
    ),
    d.Prop(
        "retired_run_ids",
        "array",
        "Runs of replaced entries that a failed step could not delete yet: the next `up` deletes them.",
        items=d.Prop("id", "string", ""),
    ),
)

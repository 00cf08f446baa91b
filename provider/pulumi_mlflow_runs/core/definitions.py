"""The resources' properties, declared once: names, types, what a change means, descriptions.

``run_spec`` takes its key lists from here (what Check enforces), ``run_diff`` each input's change rule
(``change``: which change is an update, which a replace), the native plugin its schema (``replaceOnChanges``
from the same rules) and its camelCase names, and the reference docs their tables. A property is named in
snake_case, as Python programs and the core use it; ``camel`` gives the name the schema and every other
language use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pulumi_mlflow_runs.core.change_rules import (
    ChangeRule,
    append_only,
    append_only_points,
    by_stored_hash,
    empty_is_unset,
    logged_file_rows,
    replace_on_change,
    unset_accepts_any,
    update_on_change,
    write_once_map,
)


def camel(name: str) -> str:
    """``run_name`` -> ``runName``: the names of the schema (Pulumi's convention in every language)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Prop:
    name: str
    type: str
    """``string``, ``integer``, ``number``, ``boolean``, ``map`` (of ``items``), ``array`` (of ``items``),
    ``object`` (``fields``), ``asset`` (an asset or archive), or ``any``."""
    description: str
    required: bool = False
    change: ChangeRule | None = None
    """What a change of an input means (``change_rules``); every input of a resource has one."""
    secret: bool = False
    items: Prop | None = None
    fields: tuple[Prop, ...] = field(default=())
    type_name: str | None = None
    """The schema type an ``object`` is declared as (``MetricPoint``…), where it has one of its own."""
    tag: str | None = None
    """The run tag a string input is kept in on the server (``description``: ``mlflow.note.content``). Check,
    the requests, the ``run`` view, import and refresh all read it from here (``run_spec.TAG_PROPS``)."""

    @property
    def camel(self) -> str:
        return camel(self.name)

    @property
    def replaces(self) -> bool:
        """Every change replaces the resource (the schema's ``replaceOnChanges``), as its rule says."""
        return self.change is not None and self.change.requires_replace


def _s(name: str, description: str, **kw: object) -> Prop:
    return Prop(name, "string", description, **kw)  # type: ignore[arg-type]


METRIC_POINT = Prop(
    "metric_point",
    "object",
    "One logged value of a metric.",
    type_name="MetricPoint",
    fields=(
        _s("key", "The metric's name.", required=True),
        Prop("value", "number", "The value; NaN and ±Infinity are allowed (in state as MLflow's strings).", True),
        Prop("step", "integer", "The step (default 0)."),
        Prop("timestamp", "integer", "Milliseconds since the epoch; the time it is logged when absent."),
        _s("dataset_name", "The dataset the value was computed on (MLflow 3)."),
        _s("dataset_digest", "That dataset's digest (MLflow 3)."),
        _s("model_id", "The logged model the value belongs to (MLflow 3)."),
    ),
)
DATASET = Prop(
    "dataset",
    "object",
    "A dataset as MLflow records it.",
    type_name="Dataset",
    fields=(
        _s("name", "The dataset's name.", required=True),
        _s("digest", "Its digest (a hash that identifies the version).", required=True),
        _s("source_type", "Where it comes from: `hf`, `delta_table`, `local`, ...", required=True),
        _s("source", "The source, as the source type writes it (a path, a table, a URL).", required=True),
        _s("schema", "Its schema, as JSON text."),
        _s("profile", "Its profile (row counts, ...), as JSON text."),
    ),
)
DATASET_INPUT = Prop(
    "dataset_input",
    "object",
    "A dataset the run used, with tags of the use (e.g. `mlflow.data.context: eval`).",
    type_name="DatasetInput",
    fields=(
        Prop("dataset", "object", DATASET.description, required=True, fields=DATASET.fields, type_name="Dataset"),
        Prop("tags", "map", "Tags of this use of the dataset.", items=Prop("tag", "string", "")),
    ),
)
MODEL_INPUT = Prop(
    "model_input",
    "object",
    "A logged model the run used (MLflow 3).",
    type_name="ModelInput",
    fields=(_s("model_id", "The model's id.", required=True),),
)
MODEL_OUTPUT = Prop(
    "model_output",
    "object",
    "A logged model the run produced (MLflow 3).",
    type_name="ModelOutput",
    fields=(
        _s("model_id", "The model's id.", required=True),
        Prop("step", "integer", "The step it was logged at.", True),
    ),
)
_STRINGS = Prop("value", "string", "")

RUN_INPUTS: tuple[Prop, ...] = (
    _s("experiment_id", "The experiment that holds the run.", required=True, change=replace_on_change),
    _s("run_name", "The run's name, shown in the MLflow UI.", change=unset_accepts_any(update_on_change)),
    Prop(
        "start_time",
        "integer",
        "Milliseconds since the epoch; the provider's clock at create when absent.",
        change=unset_accepts_any(replace_on_change),
    ),
    Prop(
        "end_time",
        "integer",
        "Milliseconds since the epoch; 'now' when the run ends without one.",
        change=unset_accepts_any(update_on_change),
    ),
    _s("status", "RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.", change=unset_accepts_any(update_on_change)),
    Prop(
        "params",
        "map",
        "Write-once strings: a new key is an update, a changed or removed one a replace.",
        items=_STRINGS,
        change=write_once_map,
    ),
    Prop(
        "tags",
        "map",
        "The tags this program manages; tags set by others are left alone.",
        items=_STRINGS,
        change=update_on_change,
    ),
    _s(
        "description",
        "The run's description (the `mlflow.note.content` tag the MLflow UI shows).",
        change=update_on_change,
        tag="mlflow.note.content",
    ),
    Prop(
        "metrics",
        "array",
        "Metric points. Appending points is an update that logs only the new ones; removing or altering one "
        "replaces the run.",
        items=METRIC_POINT,
        change=append_only_points,
    ),
    Prop(
        "metrics_file",
        "asset",
        "Metric points from a file a training job wrote (a FileAsset, its path relative to the program's folder): "
        "CSV with a header naming the fields of a metric point (`key`, `value`, and any of `step`, `timestamp`, "
        "`dataset_name`, `dataset_digest`, `model_id`), or JSON Lines (`.jsonl`) with those fields. Rows added at "
        "its end are an update that logs only them; a change to rows already logged replaces the run. A last line "
        "without its newline waits for the next update. The state keeps no point of it.",
        change=logged_file_rows,
    ),
    Prop(
        "dataset_inputs",
        "array",
        "Datasets the run used; appending is an update.",
        items=DATASET_INPUT,
        change=append_only,
    ),
    Prop(
        "model_inputs",
        "array",
        "Logged models the run used (MLflow 3); appending is an update.",
        items=MODEL_INPUT,
        change=append_only,
    ),
    Prop(
        "model_outputs",
        "array",
        "Logged models the run produced (MLflow 3); appending is an update.",
        items=MODEL_OUTPUT,
        change=append_only,
    ),
    Prop(
        "artifacts",
        "map",
        "Files for the run's artifact root, by path: assets, or archives that land under their key as a "
        "folder. A changed file is uploaded again, a removed one deleted.",
        items=Prop("file", "asset", ""),
        change=by_stored_hash,
    ),
    _s(
        "deployment_name",
        "A Databricks workspace: `https://<deployment_name>.cloud.databricks.com`.",
        change=replace_on_change,
    ),
    _s("host", "The base URL of a workspace or tracking server (overrides the provider's).", change=replace_on_change),
)
RUN_CREATE_ONLY: tuple[Prop, ...] = (
    _s(
        "adopt_run_id",
        "An existing run (in `experimentId`) that the create takes over instead of making a new one; read only "
        "when the resource is created.",
    ),
)
RUN_OUTPUTS: tuple[Prop, ...] = (
    _s("run_id", "The MLflow run id (also the resource id)."),
    _s("artifact_uri", "The run's artifact root."),
    _s("lifecycle_stage", "`active`, or `deleted` when the run was deleted outside Pulumi (the next up restores it)."),
    _s("user_id", "The user the server recorded."),
    Prop(
        "run",
        "any",
        "The GetRun view (`info`, `data`, `inputs`, `outputs`) less what the program declares, what the other "
        "outputs hold and the provider's own `pulumi.*` tags.",
    ),
    Prop("latest_metrics", "map", "Latest value per metric key.", items=Prop("value", "number", "")),
    Prop("artifact_files", "any", "Per uploaded file: `sha256`, `size`, `uri` (never the content)."),
    Prop(
        "metrics_file_logged",
        "any",
        "How much of `metricsFile` is logged: its first `rows` rows, `bytes` long, whose sha256 is `sha256` "
        "(never the points).",
    ),
)
"""What the core hands back besides the inputs (``run_plan.outputs_for``), the same on both doors. Its
``metrics`` (every point as logged) is kept by each door in a state form of its own: the two below."""

METRICS_FILE_SUMMARY = Prop(
    "metrics_file_summary",
    "any",
    "What Check read of `metricsFile`: `path`, `format`, the complete `rows`, their `bytes` and `sha256`, the "
    "`points` per key, and `waiting` when a last line has no newline yet.",
)
"""A checked input the provider adds (Check reads the file; Diff is handed only its hash), which a preview shows
and the state keeps in place of the points. Not in the schema's inputs: no program sets it."""

LOGGED_POINTS = Prop("logged_points", "any", "Every metric point as logged, in columns per key.")
"""The dynamic door's form of the logged points (``core.state.pack_points``): its Diff is handed only the old
outputs, so they must hold every point."""
STAMPED_AT = Prop(
    "stamped_at",
    "any",
    "When each metric point declared without a timestamp was logged, as `[[timestamp, count], ...]` over those "
    "points in the order the inputs list them (the points of one update share a timestamp); the others were "
    "logged with their own. With the inputs, this is every point as logged.",
)
"""The plugin's form of the logged points (``core.state.stamps_of``): the engine hands its Diff the old
inputs, so its state keeps only the timestamps it chose instead of every point again."""

_EXP_UPDATE, _EXP_REPLACE = empty_is_unset(update_on_change), empty_is_unset(replace_on_change)
EXPERIMENT_INPUTS: tuple[Prop, ...] = (
    _s("name", "The experiment's name (on Databricks a workspace path).", required=True, change=_EXP_UPDATE),
    _s(
        "artifact_location",
        "Where its runs' artifacts go; fixed at creation (a new one needs a new name too).",
        change=_EXP_REPLACE,
    ),
    Prop("tags", "map", "The experiment's tags this program manages.", items=_STRINGS, change=_EXP_UPDATE),
    _s("host", "The base URL of a workspace or tracking server (overrides the provider's).", change=_EXP_REPLACE),
    _s(
        "deployment_name",
        "A Databricks workspace: `https://<deployment_name>.cloud.databricks.com`.",
        change=_EXP_REPLACE,
    ),
)
EXPERIMENT_OUTPUTS: tuple[Prop, ...] = (
    _s("experiment_id", "The MLflow experiment id (also the resource id)."),
    _s("lifecycle_stage", "`active`, or `deleted` when deleted outside Pulumi (the next up restores it)."),
)


def field_names(prop: Prop) -> set[str]:
    return {f.name for f in prop.fields}


def required_fields(prop: Prop) -> tuple[str, ...]:
    return tuple(f.name for f in prop.fields if f.required)

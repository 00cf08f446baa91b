"""The package schema (``pulumi package get-schema``), generated from ``core.definitions``.

Names follow Pulumi's conventions (camelCase properties, ``mlflow-runs:index:<Type>`` tokens), so a YAML,
TypeScript or Go program writes what it writes for every other provider; the descriptions are the ones
Python users read in the resource classes' docs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.table_definitions import TABLE_INPUTS, TABLE_OUTPUTS
from pulumi_mlflow_runs.native.config import CONFIG
from pulumi_mlflow_runs.native.state import STATE_OUTPUTS
from pulumi_mlflow_runs.version import VERSION

PACKAGE = "mlflow-runs"
RUN_TOKEN = f"{PACKAGE}:index:ExperimentRun"
EXPERIMENT_TOKEN = f"{PACKAGE}:index:Experiment"
TABLE_TOKEN = f"{PACKAGE}:index:RunTable"
GET_RUN_TOKEN = f"{PACKAGE}:index:getRun"
SEARCH_RUNS_TOKEN = f"{PACKAGE}:index:searchRuns"
REPOSITORY = "https://github.com/pulumi-mlflow-runs/pulumi-mlflow-runs"
PLUGIN_DOWNLOAD_URL = "github://api.github.com/pulumi-mlflow-runs/pulumi-mlflow-runs"
"""Where the engine fetches the plugin: the GitHub releases of ``REPOSITORY``, whose assets
``.github/workflows/release.yml`` uploads, named as the engine asks (``scripts/plugin-archive.sh``)."""
GO_MODULE = "github.com/pulumi-mlflow-runs/pulumi-mlflow-runs/sdk"
"""The Go SDK's module (``sdk/go.mod``): the repository's ``sdk`` folder, as the anchors lay theirs out."""

RUN_DESCRIPTION = (
    "An MLflow run declared as code: name, params, tags, metric points, dataset and model inputs, model "
    "outputs and artifact files, in an experiment of a Databricks workspace or an open-source MLflow "
    "tracking server. Appending metric points, inputs or outputs, adding params and changing tags, status, "
    "times or files are in-place updates; what MLflow cannot change (a written param, a logged point, the "
    "experiment, the start time) replaces the run."
)
TABLE_DESCRIPTION = (
    "A table of MLflow runs as one resource: `runs` maps a key you choose to what an `ExperimentRun` takes, in one "
    "experiment on one server. The runs are written in parallel (`maxParallel` requests in flight), each exactly "
    "once; an added, removed or changed entry creates, deletes, updates or replaces that run alone, and only a "
    "change of the experiment or the connection replaces the table."
)
EXPERIMENT_DESCRIPTION = (
    "An MLflow experiment, so that a program declaring runs is self-contained. Renaming and tags are "
    "in-place updates; the artifact location is fixed at creation."
)


def _type_token(prop: d.Prop) -> str:
    assert prop.type_name is not None, prop.name
    return f"{PACKAGE}:index:{prop.type_name}"


def _spec(prop: d.Prop, types: dict[str, Any]) -> dict[str, Any]:
    """The schema of one property; object types are added to ``types`` once, by token."""
    out: dict[str, Any]
    if prop.type in ("string", "integer", "number", "boolean"):
        out = {"type": prop.type}
    elif prop.type == "map":
        assert prop.items is not None
        out = {"type": "object", "additionalProperties": _spec(prop.items, types)}
    elif prop.type == "array":
        assert prop.items is not None
        out = {"type": "array", "items": _spec(prop.items, types)}
    elif prop.type == "object":
        token = _type_token(prop)
        if token not in types:
            types[token] = {
                "type": "object",
                "description": prop.description,
                "properties": _properties(prop.fields, types),
                "required": [f.camel for f in prop.fields if f.required],
            }
        out = {"$ref": f"#/types/{token}"}
    elif prop.type == "asset":
        out = {"$ref": "pulumi.json#/Asset"}  # an asset or an archive
    else:
        out = {"$ref": "pulumi.json#/Any"}
    if prop.description:
        out["description"] = prop.description
    if prop.replaces:
        out["replaceOnChanges"] = True
    if prop.secret:
        out["secret"] = True
    return out


def _properties(props: Sequence[d.Prop], types: dict[str, Any]) -> dict[str, Any]:
    return {p.camel: _spec(p, types) for p in props}


def _resource(
    description: str, inputs: Sequence[d.Prop], outputs: Sequence[d.Prop], types: dict[str, Any]
) -> dict[str, Any]:
    return {
        "description": description,
        "inputProperties": _properties(inputs, types),
        "requiredInputs": [p.camel for p in inputs if p.required],
        "properties": _properties([*inputs, *outputs], types),
        "required": [p.camel for p in inputs if p.required] + [p.camel for p in outputs if p.name != "run"],
    }


_RUN_RESULT = d.Prop(
    "run_result",
    "object",
    "One run as runs/get answers it: `info`, `data` (latest metric per key, params, tags), `inputs`, `outputs`.",
    type_name="RunResult",
    fields=(
        d.Prop("run_id", "string", "The run's id.", required=True),
        d.Prop("info", "any", "Run metadata: experimentId, runName, status, startTime, lifecycleStage, ...", True),
        d.Prop("params", "map", "Every param.", required=True, items=d.Prop("v", "string", "")),
        d.Prop("tags", "map", "Every tag, the server's too.", required=True, items=d.Prop("v", "string", "")),
        d.Prop("metrics", "map", "Latest value per key.", required=True, items=d.Prop("v", "number", "")),
        d.Prop("run", "any", "The whole GetRun answer.", required=True),
    ),
)
_SERVER_ARGS = (
    d.Prop("host", "string", "The base URL of a workspace or tracking server (overrides the provider's)."),
    d.Prop("deployment_name", "string", "A Databricks workspace: `https://<deployment_name>.cloud.databricks.com`."),
)
GET_RUN_INPUTS = (d.Prop("run_id", "string", "The run's id.", required=True), *_SERVER_ARGS)
SEARCH_RUNS_INPUTS = (
    d.Prop("experiment_ids", "array", "The experiments to search.", required=True, items=d.Prop("id", "string", "")),
    d.Prop("filter", "string", "MLflow's search syntax, e.g. `metrics.rmse < 1 and params.model = 'x'`."),
    d.Prop("order_by", "array", 'E.g. `["metrics.rmse ASC"]`.', items=d.Prop("o", "string", "")),
    d.Prop("max_results", "integer", "At most this many runs (1-50,000); all matching runs when absent."),
    d.Prop("run_view_type", "string", "ACTIVE_ONLY (the default), DELETED_ONLY or ALL."),
    *_SERVER_ARGS,
)


def _function(description: str, inputs: Sequence[d.Prop], outputs: Sequence[d.Prop], types: dict[str, Any]) -> Any:
    return {
        "description": description,
        "inputs": {"properties": _properties(inputs, types), "required": [p.camel for p in inputs if p.required]},
        "outputs": {"properties": _properties(outputs, types), "required": [p.camel for p in outputs]},
    }


@cache
def schema() -> dict[str, Any]:
    types: dict[str, Any] = {}
    config = {p.camel: _spec(p, types) for p in CONFIG}
    return {
        "name": PACKAGE,
        "displayName": "MLflow runs",
        "version": VERSION,
        "description": "MLflow experiment runs declared as code, on Databricks or an open-source MLflow server.",
        "keywords": ["pulumi", "mlflow", "databricks", "machine-learning", "category/utility"],
        "license": "Apache-2.0",
        "repository": REPOSITORY,
        "homepage": REPOSITORY,
        "publisher": "pulumi-mlflow-runs",
        "pluginDownloadURL": PLUGIN_DOWNLOAD_URL,
        "config": {"variables": config},
        "provider": {
            "description": "The provider: where runs go when a resource names no host. Every key is optional; "
            "the environment's MLFLOW_TRACKING_URI, DATABRICKS_HOST or ~/.databrickscfg are used otherwise.",
            "inputProperties": config,
            "properties": {k: v for k, v in config.items() if not v.get("secret")},
        },
        "resources": {
            RUN_TOKEN: _resource(RUN_DESCRIPTION, (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY), STATE_OUTPUTS, types),
            EXPERIMENT_TOKEN: _resource(EXPERIMENT_DESCRIPTION, d.EXPERIMENT_INPUTS, d.EXPERIMENT_OUTPUTS, types),
            TABLE_TOKEN: _resource(TABLE_DESCRIPTION, TABLE_INPUTS, TABLE_OUTPUTS, types),
        },
        "functions": {
            GET_RUN_TOKEN: _function("One run by id (deleted runs too).", GET_RUN_INPUTS, _RUN_RESULT.fields, types),
            SEARCH_RUNS_TOKEN: _function(
                "Runs of the experiments that match `filter`, in `orderBy` order, following page tokens.",
                SEARCH_RUNS_INPUTS,
                (d.Prop("runs", "array", "The matching runs.", required=True, items=_RUN_RESULT),),
                types,
            ),
        },
        "types": types,
        "language": {
            "python": {"packageName": "pulumi_mlflow_runs_native", "respectSchemaVersion": True},
            "nodejs": {"packageName": "@pulumi-mlflow-runs/mlflow-runs", "respectSchemaVersion": True},
            "go": {"importBasePath": f"{GO_MODULE}/go/mlflowruns", "respectSchemaVersion": True},
        },
    }


def schema_json() -> str:
    return json.dumps(schema(), indent=2, sort_keys=False)


if __name__ == "__main__":  # scripts/gen-sdk.sh
    print(schema_json())

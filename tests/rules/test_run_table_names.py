"""A RunTable's Check failures on the plugin name the entry and the property in the schema's names."""

from __future__ import annotations

from pulumi_mlflow_runs.core.table_definitions import RUN_TABLE_ENTRY, TABLE_INPUTS
from pulumi_mlflow_runs.native.names import camel_path, convert
from pulumi_mlflow_runs.native.schema import TABLE_TOKEN, schema
from pulumi_mlflow_runs.native.table import TableHandler

URN = f"urn:pulumi:dev::evals::{TABLE_TOKEN}::table"


def test_failures_name_the_entry_and_the_camel_case_property() -> None:
    handler = TableHandler()
    sent = {
        "experimentId": "1",
        "maxParallel": 0,
        "runs": {
            "bert sst2": {"runName": 3, "metrics": [{"key": "acc", "value": 1, "datasetName": 5}]},
            "other": {"experimentId": "2", "metricsFile": None, "startTime": "soon"},
        },
    }
    _, failures = handler.check(URN, convert(sent, handler.props, to_snake=True), {})
    named = sorted(camel_path(prop, handler.props) for prop, _ in failures)
    assert named == [
        "maxParallel",
        'runs["bert sst2"].metrics[0].datasetName',
        'runs["bert sst2"].runName',
        'runs["other"].experimentId',
        'runs["other"].startTime',
    ], failures


def test_the_schema_replaces_the_table_only_for_the_experiment_and_the_connection() -> None:
    table = schema()["resources"][TABLE_TOKEN]
    replacing = {k for k, v in table["inputProperties"].items() if v.get("replaceOnChanges")}
    assert replacing == {"experimentId", "host", "deploymentName"}
    entry = schema()["types"]["mlflow-runs:index:RunTableEntry"]["properties"]
    assert not [k for k, v in entry.items() if v.get("replaceOnChanges")], "an entry's change never replaces the table"
    assert set(entry) == {p.camel for p in RUN_TABLE_ENTRY.fields}
    assert "metricsFile" in entry and "experimentId" not in entry
    assert table["requiredInputs"] == [p.camel for p in TABLE_INPUTS if p.required]

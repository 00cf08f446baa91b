"""A RunTable's Check failures on the plugin name the entry and the property in the schema's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pulumi_mlflow_runs.core.table_definitions import RUN_TABLE_ENTRY, TABLE_INPUTS
from pulumi_mlflow_runs.native.names import camel_path, convert
from pulumi_mlflow_runs.native.schema import TABLE_TOKEN, schema
from pulumi_mlflow_runs.native.table import TableHandler
from pulumi_mlflow_runs.native.wire import HashedFileAsset

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


def test_an_entry_s_metrics_file_is_read_by_check_and_a_bad_one_named_in_camel_case(tmp_path: Path) -> None:
    """The plugin's Check reads each entry's file: a good one's summary is what it adds to that entry (the engine
    hands it to every later step), a bad one fails naming the entry's ``metricsFile``, the file and the line."""
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("key,value,step\nloss,0.5,0\nloss,0.4,1\n")
    bad.write_text("key,value,step\nloss,0.5,0\nloss,oops,1\n")
    handler = TableHandler()
    sent = {"experimentId": "1", "runs": {"ok": {"metricsFile": HashedFileAsset(str(good))}, "plain": {}}}
    added, failures = handler.check(URN, convert(sent, handler.props, to_snake=True), {})
    assert failures == []
    assert added == {"runs": {"ok": {"metrics_file_summary": added["runs"]["ok"]["metrics_file_summary"]}}}
    assert added["runs"]["ok"]["metrics_file_summary"]["points"] == {"loss": 2}

    sent["runs"]["bert"] = {"metricsFile": HashedFileAsset(str(bad))}
    _, failures = handler.check(URN, convert(sent, handler.props, to_snake=True), {})
    ((prop, reason),) = failures
    assert camel_path(prop, handler.props) == 'runs["bert"].metricsFile', failures
    assert f"{bad}, line 3, column 2 (value)" in reason


def test_an_entry_s_file_the_engine_says_is_unchanged_is_not_read_again(tmp_path: Path) -> None:
    """Check keeps an entry's summary while the engine sends the file's old hash (a preview of a thousand entries
    reads no file); a new hash is read."""
    path = tmp_path / "train.csv"
    path.write_text("key,value,step\nloss,0.5,0\n")
    handler = TableHandler()

    def check(engine_hash: str, olds: dict[str, Any]) -> dict[str, Any]:
        asset = HashedFileAsset(str(path))
        asset.engine_hash = engine_hash
        news = {"experiment_id": "1", "runs": {"ok": {"metrics_file": asset}}}
        added, failures = handler.check(URN, news, olds)
        assert failures == []
        return {**news, "runs": {"ok": {**news["runs"]["ok"], **added["runs"]["ok"]}}}

    first = check("h1", {})
    path.write_text("key,value,step\nloss,0.5,0\nloss,0.4,1\n")  # what the engine would hash anew
    assert check("h1", first)["runs"]["ok"]["metrics_file_summary"]["points"] == {"loss": 1}, "the summary stands"
    assert check("h2", first)["runs"]["ok"]["metrics_file_summary"]["points"] == {"loss": 2}, "a new hash: read"

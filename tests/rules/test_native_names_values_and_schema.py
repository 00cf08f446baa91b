"""The native door's pure parts: names both ways, the engine's values, the detailed diff, the schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from pulumi.asset import FileAsset, StringAsset
from pulumi.runtime.proto import provider_pb2

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.artifacts.files import Elided
from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS, OUTPUT_KEYS, REPLACE_KEYS, check_inputs
from pulumi_mlflow_runs.core.state import logged_from, stamps_of
from pulumi_mlflow_runs.native import diff as detail
from pulumi_mlflow_runs.native import wire
from pulumi_mlflow_runs.native.names import camel_path, convert
from pulumi_mlflow_runs.native.schema import RUN_TOKEN, schema

RUN = (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY, *d.RUN_OUTPUTS)
ADD, DELETE, UPDATE = provider_pb2.PropertyDiff.ADD, provider_pb2.PropertyDiff.DELETE, provider_pb2.PropertyDiff.UPDATE
UPDATE_REPLACE = provider_pb2.PropertyDiff.UPDATE_REPLACE


@pytest.mark.parametrize(
    ("snake", "camel"),
    [
        ("metrics[3].dataset_name", "metrics[3].datasetName"),
        ("dataset_inputs[0].dataset.source_type", "datasetInputs[0].dataset.sourceType"),
        ("dataset_inputs[0].tags.my_tag", "datasetInputs[0].tags.my_tag"),
        ("tags.team_name", "tags.team_name"),  # a user's key stays as written
        ("params.a.b_c", "params.a.b_c"),
        ("artifacts.reports/eval_1.html", "artifacts.reports/eval_1.html"),
        ("experiment_id", "experimentId"),
        ("adopt_run_id", "adoptRunId"),
        ("model_outputs[2].model_id", "modelOutputs[2].modelId"),
    ],
)
def test_check_failures_name_the_schemas_property(snake: str, camel: str) -> None:
    assert camel_path(snake, RUN) == camel


def test_names_convert_both_ways_and_leave_user_keys_alone() -> None:
    wire_form = {
        "experimentId": "1",
        "runName": "r",
        "params": {"batch_size": "32"},
        "metrics": [{"key": "loss", "value": 1.0, "datasetName": "d"}],
        "datasetInputs": [{"dataset": {"sourceType": "hf", "name": "n"}, "tags": {"mlflow.data.context": "eval"}}],
    }
    snake = convert(wire_form, RUN, to_snake=True)
    assert snake == {
        "experiment_id": "1",
        "run_name": "r",
        "params": {"batch_size": "32"},
        "metrics": [{"key": "loss", "value": 1.0, "dataset_name": "d"}],
        "dataset_inputs": [{"dataset": {"source_type": "hf", "name": "n"}, "tags": {"mlflow.data.context": "eval"}}],
    }
    assert convert(snake, RUN, to_snake=False) == wire_form


def test_the_schema_has_every_input_and_output_the_core_checks() -> None:
    run = schema()["resources"][RUN_TOKEN]
    assert set(run["inputProperties"]) == {d.camel(k) for k in (*INPUT_KEYS, "adopt_run_id")}
    outputs = {*OUTPUT_KEYS, "stamped_at"} - {"logged_points"}  # the plugin keeps stamps, not the points again
    assert set(run["properties"]) == {d.camel(k) for k in (*INPUT_KEYS, "adopt_run_id", *outputs)}
    replacing = {k for k, v in run["inputProperties"].items() if v.get("replaceOnChanges")}
    assert replacing == {d.camel(k) for k in REPLACE_KEYS}
    point = schema()["types"]["mlflow-runs:index:MetricPoint"]
    assert set(point["properties"]) == {"key", "value", "step", "timestamp", "datasetName", "datasetDigest", "modelId"}
    assert point["required"] == ["key", "value"]
    json.dumps(schema())  # serializable as it is served


def test_wire_values_secrets_assets_and_unknowns(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("b")
    struct = struct_pb2.Struct()
    struct.update(
        {
            "runName": "r",
            "params": {wire.SIG: wire.SECRET_SIG, "value": {"key": "s3cr3t"}},
            "artifacts": {
                "a.txt": {wire.SIG: wire.ASSET_SIG, "text": "hello"},
                "b.txt": {wire.SIG: wire.ASSET_SIG, "path": str(tmp_path / "b.txt")},
                "c.txt": {wire.SIG: wire.ASSET_SIG, "hash": "abc"},  # as Diff gets it: no contents
            },
            "experimentId": wire.UNKNOWN,
            "startTime": 1767225600000.0,
        }
    )
    values, secret = wire.decode(struct)
    assert secret == {"params"} and values["params"] == {"key": "s3cr3t"}
    assert isinstance(values["artifacts"]["a.txt"], StringAsset) and isinstance(values["artifacts"]["b.txt"], FileAsset)
    assert isinstance(values["artifacts"]["c.txt"], Elided) and values["artifacts"]["c.txt"].hash == "abc"
    assert values["experimentId"] == wire.UNKNOWN
    inputs, failures = check_inputs(convert(values, RUN, to_snake=True))
    assert failures == [] and inputs["start_time"] == 1767225600000  # a whole number again

    out = wire.encode({"params": {"key": "v"}, "latestMetrics": {"m": float("nan")}, "gone": None}, {"params"})
    assert set(out.fields) == {"params", "latestMetrics"}
    assert dict(out["params"])[wire.SIG] == wire.SECRET_SIG
    assert out["latestMetrics"]["m"] == "NaN"  # state is JSON


def test_the_detailed_diff_names_the_appended_point_alone() -> None:
    old = [{"key": "loss", "value": v, "step": i} for i, v in enumerate([0.9, 0.6, 0.4])]
    old += [{"key": "acc", "value": 0.8, "step": 2}]
    new = [*old[:3], {"key": "loss", "value": 0.3, "step": 3}, old[3]]  # inserted before a later key
    assert detail.detailed(["metrics"], [], {"metrics": old}, {"metrics": new}) == {"metrics[3]": ADD}


def test_the_detailed_diff_of_maps_and_replaces() -> None:
    old_inputs = {"params": {"lr": "0.1", "bs": "32"}, "tags": {"a": "1", "b": "2"}, "experiment_id": "1"}
    news = {"params": {"lr": "0.2", "bs": "32", "new": "x"}, "tags": {"a": "1", "c": "3"}, "experiment_id": "2"}
    found = detail.detailed(["params", "tags", "experiment_id"], ["params", "experiment_id"], old_inputs, news)
    assert found == {
        "params.lr": UPDATE_REPLACE,
        "params.new": ADD,  # a new param alone is an update
        "tags.b": DELETE,
        "tags.c": ADD,
        "experimentId": UPDATE_REPLACE,
    }


def test_files_are_compared_by_the_engines_hash() -> None:
    old = {"report.md": Elided("asset", "h1"), "keep.txt": Elided("asset", "h2"), "gone.txt": Elided("asset", "h3")}
    new = {"report.md": Elided("asset", "h9"), "keep.txt": Elided("asset", "h2"), "new file.txt": Elided("asset", "h4")}
    assert detail.artifact_diff(old, new) == {
        'artifacts["report.md"]': UPDATE,
        'artifacts["gone.txt"]': DELETE,
        'artifacts["new file.txt"]': ADD,
    }
    assert detail.artifact_diff(old, dict(old)) == {}


def test_an_empty_text_is_read_as_the_engine_sends_it_and_compares_by_its_hash() -> None:
    """The engine sends ``StringAsset("")`` as its signature and the hash of nothing (the empty text is left
    out) and takes that form for the empty text; any other hash alone is an asset without its contents."""
    empty = hashlib.sha256(b"").hexdigest()
    struct = struct_pb2.Struct()
    struct.update(
        {
            "artifacts": {
                "empty.md": {wire.SIG: wire.ASSET_SIG, "hash": empty},
                "elided.md": {wire.SIG: wire.ASSET_SIG, "hash": "abc"},
                "dir": {wire.SIG: wire.ARCHIVE_SIG, "assets": {"e": {wire.SIG: wire.ASSET_SIG, "hash": empty}}},
            }
        }
    )
    files = wire.decode(struct)[0]["artifacts"]
    assert isinstance(files["empty.md"], StringAsset) and files["empty.md"].text == ""
    assert isinstance(files["elided.md"], Elided)
    assert files["dir"].assets["e"].text == ""
    assert detail.artifact_diff({"empty.md": Elided("asset", empty)}, {"empty.md": files["empty.md"]}) == {}
    assert detail.artifact_diff({"empty.md": Elided("asset", "h1")}, {"empty.md": files["empty.md"]}) == {
        'artifacts["empty.md"]': UPDATE
    }
    back = dict(wire.encode({"artifacts": {"empty.md": StringAsset("")}})["artifacts"]["empty.md"])
    assert back == {wire.SIG: wire.ASSET_SIG, "hash": empty, "text": ""}  # Read hands stored inputs back whole


def test_the_dynamic_door_sends_an_empty_file_as_a_plain_empty_text() -> None:
    """The SDK's dynamic host reads a request before it loads this provider, so the engine's form of an empty
    text would fail there: the program sends ``EMPTY_FILE`` instead, an archive's empty member moved out to
    the path it lands on, and Check takes it as the empty file."""
    from pulumi import AssetArchive, FileAsset

    from pulumi_mlflow_runs.core.artifacts.files import EMPTY_FILE, expand
    from pulumi_mlflow_runs.dynamic.elided_assets import sendable

    kept = StringAsset("x")
    sent = sendable(
        {
            "empty.md": StringAsset(""),
            "kept.md": kept,
            "dir": AssetArchive(
                {"a": StringAsset(""), "b": StringAsset("b"), "sub": AssetArchive({"c": StringAsset("")})}
            ),
            "whole": AssetArchive({"f": FileAsset(__file__)}),
        }
    )
    assert sent["empty.md"] == EMPTY_FILE and sent["kept.md"] is kept
    assert sent["dir/a"] == EMPTY_FILE and sent["dir/sub/c"] == EMPTY_FILE
    assert set(sent["dir"].assets) == {"b", "sub"} and sent["dir"].assets["sub"].assets == {}
    assert sendable({"whole": sent["whole"]})["whole"] is sent["whole"]  # nothing moved: the archive as declared
    files, failures, unknown = expand(sent)
    assert failures == [] and not unknown
    assert {path: b"".join(source.chunks()) for path, source in files.items() if path != "whole/f"} == {
        "empty.md": b"",
        "kept.md": b"x",
        "dir/a": b"",
        "dir/b": b"b",
        "dir/sub/c": b"",
    }


def test_stamps_with_the_inputs_give_every_point_as_logged() -> None:
    """The plugin's state keeps the timestamps it chose as runs; with the declared points they are the
    logged points again, and stamps that do not fit the points say so (None) instead of guessing."""
    declared = [
        {"key": "loss", "value": 0.9, "step": 0},
        {"key": "loss", "value": 0.5, "step": 1, "timestamp": 7},
        {"key": "acc", "value": 0.1, "step": 0},
        {"key": "loss", "value": 0.3, "step": 2},
    ]
    logged = [{**p, "timestamp": p.get("timestamp", t)} for p, t in zip(declared, [100, 0, 100, 200], strict=True)]
    stamps = stamps_of(declared, logged)
    assert stamps == [[100, 2], [200, 1]]
    assert logged_from(declared, stamps) == logged
    assert logged_from(declared, [[100.0, 2.0], [200.0, 1.0]]) == logged  # as the wire gives numbers
    assert logged_from(declared, [[100, 2]]) is None  # a point without its stamp
    assert logged_from(declared, [[100, 4]]) is None  # a stamp without its point
    assert stamps_of([p for p in declared if "timestamp" in p], [logged[1]]) is None  # nothing stamped

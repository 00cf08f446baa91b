"""What the plugin's Check adds is merged into the inputs as sent (``wire.merge``): a table's metrics file summary
lands inside its entry beside the entry's assets, which stay as the engine sent them; a summary replaces any
there; a secret stays a secret, what is added under a secret is secret too, and a summary is a secret where its
file is one (not because another entry holds a secret)."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from pulumi_mlflow_runs.native import wire

CHECKED = {"metricsFileSummary": "metricsFile"}
ASSET = {wire.SIG: wire.ASSET_SIG, "path": "./metrics/bert.csv", "hash": "ab12"}


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _secret(value: Any) -> dict[str, Any]:
    return {wire.SIG: wire.SECRET_SIG, "value": value}


def test_a_summary_lands_in_its_entry_and_the_assets_stay_as_sent() -> None:
    sent = _struct({"experimentId": "1", "runs": {"bert": {"metricsFile": ASSET, "tags": {"a": "b"}}, "t5": {}}})
    added = _struct({"runs": {"bert": {"metricsFileSummary": {"rows": 3, "points": {"loss": 3}}}}})

    wire.merge(sent, added, CHECKED)

    assert sent.fields["runs"].struct_value.fields["bert"].struct_value.fields["metricsFile"].struct_value == (
        _struct(ASSET)
    ), "the asset is the engine's, untouched"
    values, secret = wire.decode(sent)
    bert = values["runs"]["bert"]
    assert bert["metricsFileSummary"] == {"rows": 3.0, "points": {"loss": 3.0}}
    assert bert["tags"] == {"a": "b"} and values["runs"]["t5"] == {} and values["experimentId"] == "1"
    assert secret == set()


def test_a_summary_replaces_the_one_there_whole() -> None:
    sent = _struct(
        {"metricsFileSummary": {"rows": 3, "waiting": True}, "runs": {"k": {"metricsFileSummary": {"x": 1}}}}
    )
    added = _struct({"metricsFileSummary": {"rows": 4}, "runs": {"k": {"metricsFileSummary": {"rows": 5}}}})

    wire.merge(sent, added, CHECKED)

    values, _ = wire.decode(sent)
    assert values == {"metricsFileSummary": {"rows": 4.0}, "runs": {"k": {"metricsFileSummary": {"rows": 5.0}}}}


def test_secrets_stay_secret_and_a_summary_is_as_secret_as_its_file() -> None:
    # runs secret as a whole: the summary goes inside the secret
    whole = _struct({"runs": _secret({"bert": {"metricsFile": ASSET}})})
    wire.merge(whole, _struct({"runs": _secret({"bert": {"metricsFileSummary": {"rows": 3}}})}), CHECKED)
    runs = whole.fields["runs"].struct_value.fields
    assert runs[wire.SIG].string_value == wire.SECRET_SIG
    bert = runs["value"].struct_value.fields["bert"].struct_value.fields
    assert set(bert) == {"metricsFile", "metricsFileSummary"}
    assert bert["metricsFileSummary"].struct_value == _struct({"rows": 3}), "inside the secret: no second wrapper"

    # a secret tag in one entry: it stays, and the summary beside a plain file is plain, though the door marked
    # what it added secret (it knows only that `runs` holds a secret)
    deep = _struct({"runs": {"bert": {"tags": {"token": _secret("s3cr3t")}, "metricsFile": ASSET}}})
    wire.merge(deep, _struct({"runs": _secret({"bert": {"metricsFileSummary": {"rows": 3}}})}), CHECKED)
    bert = deep.fields["runs"].struct_value.fields["bert"].struct_value.fields
    assert bert["tags"].struct_value.fields["token"].struct_value == _struct(_secret("s3cr3t"))
    assert bert["metricsFileSummary"].struct_value == _struct({"rows": 3})

    # a secret file: its summary is a secret, in an entry or in a lone run
    entry = _struct({"runs": {"bert": {"metricsFile": _secret(ASSET)}}})
    wire.merge(entry, _struct({"runs": {"bert": {"metricsFileSummary": {"rows": 3}}}}), CHECKED)
    bert = entry.fields["runs"].struct_value.fields["bert"].struct_value.fields
    assert bert["metricsFileSummary"].struct_value == _struct(_secret({"rows": 3}))
    run = _struct({"metricsFile": _secret(ASSET)})
    wire.merge(run, _struct({"metricsFileSummary": {"rows": 3}}), CHECKED)
    assert run.fields["metricsFileSummary"].struct_value == _struct(_secret({"rows": 3}))

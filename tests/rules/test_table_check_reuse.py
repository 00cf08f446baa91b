"""The plugin's Check of a table whose entries all come from a runs file the engine says is unchanged (the same
hash as the state's): the entries go back to the engine as the state holds them, copied on the wire, without the
file being read or a thousand entries checked again; the table's own inputs are still checked. Any other change
(another hash, entries in the program too) reads the file as usual. No server: Check sends no request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2

from pulumi_mlflow_runs.native import wire
from pulumi_mlflow_runs.native.provider import Provider
from pulumi_mlflow_runs.native.schema import TABLE_TOKEN

URN = f"urn:pulumi:dev::evals::{TABLE_TOKEN}::table"
STORED_RUNS = {"a": {"status": "FINISHED", "params": {"lr": "0.1"}}, "b": {"runName": "bee"}}


class _Context:
    def abort(self, *args: Any) -> None:
        raise AssertionError(args)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _asset(path: Path, digest: str) -> dict[str, Any]:
    return {wire.SIG: wire.ASSET_SIG, "path": str(path), "hash": digest}


def _check(news: dict[str, Any], olds: dict[str, Any]) -> Any:
    request = provider_pb2.CheckRequest(urn=URN, type=TABLE_TOKEN, news=_struct(news), olds=_struct(olds))
    return Provider().Check(request, _Context())  # type: ignore[arg-type]


def test_an_unchanged_runs_file_hands_back_the_stored_entries_unread(tmp_path: Path) -> None:
    gone = tmp_path / "results.csv"  # not there: reading it would fail Check
    olds = {"experimentId": "1", "runsFile": _asset(gone, "h1"), "runs": STORED_RUNS}
    answer = _check({"experimentId": "1", "runsFile": _asset(gone, "h1")}, olds)
    assert list(answer.failures) == []
    assert answer.inputs.fields["runs"] == _struct(olds).fields["runs"]
    assert answer.inputs.fields["runsFile"] == _struct(olds).fields["runsFile"]


def test_the_tables_own_inputs_are_still_checked(tmp_path: Path) -> None:
    file = _asset(tmp_path / "results.csv", "h1")
    answer = _check({"experimentId": "1", "runsFile": file, "maxParallel": 99}, {"runsFile": file, "runs": STORED_RUNS})
    assert [(f.property, f.reason) for f in answer.failures] == [
        ("maxParallel", "must be a whole number between 1 and 32, got 99.0")
    ]


def test_another_hash_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("key,params.lr\na,0.2\n")
    olds = {"experimentId": "1", "runsFile": _asset(path, "h1"), "runs": STORED_RUNS}
    answer = _check({"experimentId": "1", "runsFile": _asset(path, "h2")}, olds)
    assert list(answer.failures) == []
    runs, _ = wire.decode(answer.inputs)
    assert runs["runs"] == {"a": {"params": {"lr": "0.2"}}}


def test_entries_in_the_program_too_read_the_file(tmp_path: Path) -> None:
    gone = tmp_path / "results.csv"
    olds = {"experimentId": "1", "runsFile": _asset(gone, "h1"), "runs": STORED_RUNS}
    answer = _check({"experimentId": "1", "runsFile": _asset(gone, "h1"), "runs": {"c": {}}}, olds)
    assert [(f.property, f.reason) for f in answer.failures] == [
        ("runsFile", f"no file at {gone} (a path relative to the program's folder)")
    ]

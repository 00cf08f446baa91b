"""A metrics file as Check, Diff and the sender read it: rows, errors that name the line and the column,
the summary a preview shows, and the verdict from the logged part alone. No server here."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from pulumi_mlflow_runs.core import metrics_file as mf
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_spec import check_inputs
from pulumi_mlflow_runs.native import wire

HEADER = "key,value,step,timestamp\n"


def _csv(path: Path, *rows: str, header: str = HEADER) -> str:
    path.write_text(header + "".join(f"{r}\n" for r in rows))
    return str(path)


def _summary(path: str, **inputs: object) -> dict[str, object]:
    news = {"experiment_id": "1", "metrics_file": pulumi.FileAsset(path), **inputs}
    checked, failures = check_inputs(news, read_files=True)
    assert failures == []
    return checked[mf.SUMMARY]


def _failure(path: str, **inputs: object) -> str:
    news = {"experiment_id": "1", "metrics_file": pulumi.FileAsset(path), **inputs}
    _, failures = check_inputs(news, read_files=True)
    assert len(failures) == 1, failures
    prop, reason = failures[0]
    assert prop == "metrics_file"
    return reason


def test_a_csv_file_is_summarized_per_key_and_a_partial_last_line_waits(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "acc,0.5,0,1000", "loss,0.7,1,2000")
    with open(path, "a") as f:
        f.write("acc,0.6,1,20")  # still being written
    summary = _summary(path)
    complete = len(HEADER) + len("loss,0.9,0,1000\nacc,0.5,0,1000\nloss,0.7,1,2000\n")
    assert summary == {
        "path": path, "format": "csv", "rows": 3, "bytes": complete,
        "sha256": mf.prefix_sha256(path, complete), "points": {"acc": 1, "loss": 2}, "waiting": True,
    }  # fmt: skip


def test_json_lines_take_the_same_fields_and_optional_ones(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    rows = [{"key": "f1", "value": 0.8}, {"key": "f1", "value": "NaN", "step": 2, "dataset_name": "sst2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = _summary(str(path))
    assert (summary["format"], summary["rows"], summary["points"]) == ("jsonl", 2, {"f1": 2})
    points = [p for b in mf.batches(str(path), None, 77) for p in b.points]
    assert points == [
        {"key": "f1", "value": 0.8, "step": 0, "timestamp": 77},
        {"key": "f1", "value": "NaN", "step": 2, "dataset_name": "sst2", "timestamp": 77},
    ]


@pytest.mark.parametrize(
    ("rows", "header", "expected"),
    [
        (["loss,abc,0,1"], HEADER, "line 2, column 2 (value): must be a number"),
        (["loss,0.1,1.5,1"], HEADER, "line 2, column 3 (step): must be a whole number"),
        (["loss,0.1,0,-4"], HEADER, "line 2, column 4 (timestamp): must be a whole number from 0"),
        (["loss,0.1,0"], HEADER, "line 2: has 3 fields where the header names 4"),
        (["../x,0.1,0,1"], HEADER, "line 2, column 1 (key): metric key '../x' must not look like a relative"),
        (["loss,0.1,0,1"], "key,value,epoch\n", "line 1, column 3: the header names 'epoch'"),
        (["0.1,0"], "value,step\n", "line 1: the header must name a 'key' column"),
        (["loss,0.1,0,1", "acc,1,0,1", "loss,0.1,0,1"], HEADER, "line 4: repeats line 2"),
    ],
)
def test_a_malformed_row_names_the_file_the_line_and_the_column(
    tmp_path: Path, rows: list[str], header: str, expected: str
) -> None:
    path = _csv(tmp_path / "bad.csv", *rows, header=header)
    reason = _failure(path)
    assert reason.startswith(f"{path}, ") and expected in reason, reason


def test_a_bad_json_line_names_its_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"key": "a", "value": 1}\n{"key": "a", "value": 2, "stepp": 1}\n{"key": \n')
    assert f"{path}, line 2, column 26: 'stepp' is not a field" in _failure(str(path))
    path.write_text('{"key": "a", "value": 1}\n{"key": \n')
    assert _failure(str(path)) == f"{path}, line 2, column 9: not JSON (Expecting value)"


def test_a_missing_file_names_its_path_and_other_assets_are_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    assert _failure(missing) == f"no file at {missing} (a path relative to the program's folder)"
    text = pulumi.StringAsset("key,value\n")
    _, failures = check_inputs({"experiment_id": "1", "metrics_file": text}, read_files=True)
    assert failures == [("metrics_file", "must be a FileAsset (a file the training job wrote), got StringAsset")]


def test_a_point_in_both_metrics_and_the_file_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.7,1,2000")
    assert _summary(path, metrics=[{"key": "loss", "value": 0.7, "step": 2, "timestamp": 2000}])["rows"] == 2
    both = {"key": "loss", "value": 0.7, "step": 1, "timestamp": 2000}
    reason = _failure(path, metrics=[{"key": "acc", "value": 1}, both])
    assert reason == f"{path}, line 3: is also metrics[1]; declare a point in metrics or in the file, not in both"


def test_the_verdict_appended_rows_update_changed_or_removed_rows_replace(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.7,1,2000")
    logged = {mf.LOGGED: {k: _summary(path)[k] for k in ("rows", "bytes", "sha256")}}
    news = {"experiment_id": "1", "metrics_file": object()}

    def verdict() -> tuple[tuple[str, ...], tuple[str, ...]]:
        d = diff_run({**logged, "experiment_id": "1"}, {**news, mf.SUMMARY: _summary(path)})
        return d.replaces, d.updates

    assert verdict() == ((), ())
    _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.7,1,2000", "loss,0.5,2,3000")
    assert verdict() == ((), ("metrics_file",))
    _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.71,1,2000", "loss,0.5,2,3000")
    assert verdict() == (("metrics_file",), ())
    _csv(tmp_path / "train.csv", "loss,0.9,0,1000")
    assert verdict() == (("metrics_file",), ())
    assert diff_run({**logged, "experiment_id": "1"}, {"experiment_id": "1"}).replaces == ("metrics_file",)
    never = {"experiment_id": "1", mf.LOGGED: None}
    assert diff_run(never, {"experiment_id": "1"}).changes is False


def test_batches_resume_from_the_progress_tag_with_its_timestamp(tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", *(f"loss,{i},{i}," for i in range(5)))
    sent = list(mf.batches(path, None, 111, rows=2))
    assert [len(b.points) for b in sent] == [2, 2, 1] and all(b.stamped for b in sent)
    assert [b.progress.open for b in sent] == [True, True, False], "open but for the append's last batch"
    assert {p["timestamp"] for b in sent for p in b.points} == {111}
    first = sent[0].progress
    assert mf.Progress.of(first.tag_value()) == first and len(first.tag_value()) <= 250
    # an append cut short after the first batch: the next one starts after it, with the same timestamp
    start, stamp = mf.resume_point(path, None, first, now=999)
    assert (start, stamp) == (first.logged, 111)
    assert [p["step"] for b in mf.batches(path, start, stamp) for p in b.points] == [2, 3, 4]
    # the same where a refresh took the tag's position into state
    assert mf.resume_point(path, first.logged, first, now=999) == (first.logged, 111)
    # an append that ended: the next one is new, with a new timestamp, from wherever it ended
    last = sent[-1].progress
    assert mf.resume_point(path, first.logged, last, now=999) == (last.logged, 999)
    assert mf.resume_point(path, last.logged, last, now=999) == (last.logged, 999)
    # the file no longer starts with what state says is logged
    _csv(tmp_path / "t.csv", "loss,9,0,")
    with pytest.raises(mf.FileProblem, match="its first 2 rows are logged, and the file no longer starts with"):
        mf.resume_point(path, first.logged, None, now=1)


class _Context:
    def abort(self, code: object, details: str) -> None:
        raise AssertionError(f"{code}: {details}")


def _plugin_check(news: dict[str, object], olds: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    from google.protobuf import json_format
    from pulumi.runtime.proto import provider_pb2

    from pulumi_mlflow_runs.native.provider import Provider

    request = provider_pb2.CheckRequest(
        urn="urn:pulumi:s::p::mlflow-runs:index:ExperimentRun::r", news=wire.encode(news), olds=wire.encode(olds)
    )
    response = Provider().Check(request, _Context())
    return json_format.MessageToDict(response.inputs), [f"{f.property}: {f.reason}" for f in response.failures]


def _asset(path: str, sha: str) -> dict[str, object]:
    return {wire.SIG: wire.ASSET_SIG, "path": path, "hash": sha}


def test_the_plugin_reads_no_file_whose_hash_the_engine_says_is_unchanged(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.7,1,2000")
    first, failures = _plugin_check({"experimentId": "1", "metricsFile": _asset(path, "h1")}, {})
    assert failures == [] and first["metricsFileSummary"]["rows"] == 2
    Path(path).unlink()  # a read now would fail: the summary Check gave before stands
    olds = {"experimentId": "1", "metricsFile": _asset(path, "h1"), "metricsFileSummary": first["metricsFileSummary"]}
    again, failures = _plugin_check({"experimentId": "1", "metricsFile": _asset(path, "h1")}, olds)
    assert failures == [] and again["metricsFileSummary"] == first["metricsFileSummary"]
    _, failures = _plugin_check({"experimentId": "1", "metricsFile": _asset(path, "h2")}, olds)
    assert failures == [f"metricsFile: no file at {path} (a path relative to the program's folder)"]


def test_a_secret_file_makes_its_summary_secret_on_the_plugin(tmp_path: Path) -> None:
    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000")
    secret = {wire.SIG: wire.SECRET_SIG, "value": _asset(path, "h")}
    inputs, failures = _plugin_check({"experimentId": "1", "metricsFile": secret}, {})
    assert failures == [] and inputs["metricsFileSummary"][wire.SIG] == wire.SECRET_SIG


@pytest.mark.slow
def test_reading_and_sending_a_long_file_keeps_memory_flat(tmp_path: Path) -> None:
    """Sending holds one batch at a time; Check holds 8 bytes a row (the repeat test), not the points."""
    import tracemalloc

    def peaks(rows: int) -> tuple[int, int]:
        path = _csv(tmp_path / f"{rows}.csv", *(f"loss,{i / 7},{i},{1000 + i}" for i in range(rows)))
        tracemalloc.start()
        for _ in mf.batches(path, None, 1):
            pass
        sending = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        mf.summarize(path)
        checking = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return sending, checking

    small_send, _ = peaks(10_000)
    big_send, big_check = peaks(100_000)
    assert big_send < 2 * small_send + 200_000, (small_send, big_send)
    assert big_check < 100 * 100_000, f"{big_check} bytes to check 100,000 rows"


def test_the_dynamic_door_hashes_an_unchanged_file_instead_of_reading_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulumi_mlflow_runs import ExperimentRunProvider

    path = _csv(tmp_path / "train.csv", "loss,0.9,0,1000", "loss,0.7,1,2000")
    news = {"experiment_id": "1", "metrics_file": pulumi.FileAsset(path)}
    first = ExperimentRunProvider().check({}, news)
    assert first.failures == []
    olds = dict(first.inputs)

    def no_parsing(*args: object, **kwargs: object) -> object:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(mf, "summarize", no_parsing)
    with open(path, "a") as f:
        f.write("loss,0.5,2")  # a row still being written: no new complete row
    again = ExperimentRunProvider().check(olds, news)
    assert again.failures == [] and again.inputs[mf.SUMMARY] == {**olds[mf.SUMMARY], "waiting": True}
    # other inline points: the file is checked against them again
    with pytest.raises(AssertionError, match="parsed"):
        ExperimentRunProvider().check(olds, {**news, "metrics": [{"key": "acc", "value": 1}]})
    with open(path, "a") as f:
        f.write(",3000\n")  # the row is complete: the file is read
    with pytest.raises(AssertionError, match="parsed"):
        ExperimentRunProvider().check(olds, news)

"""A RunTable's ``runsFile``: what each format reads as entries, and what Check says of a file it cannot read
(naming ``runs_file``, the file, the line), of an entry the file holds that a run's rules refuse (naming the
entry, the property and the file), and of a key given in both ``runs`` and the file. No server: the file is read
by Check alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.asset import FileAsset

from pulumi_mlflow_runs.core.table_file import read_entries, with_file_entries
from pulumi_mlflow_runs.core.table_spec import check_table


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _checked(table: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    expanded, keys, failures = with_file_entries(table)
    checked, found = check_table(expanded, file_keys=keys or ())
    return checked, failures + found


def test_a_csv_row_is_an_entry_by_the_columns_names(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "results.csv",
        "key,runName,status,startTime,params.model,params.seed,metrics.accuracy,metrics.f1,tags.team\n"
        "bert-s1,,FINISHED,1700000000000,bert,1,0.81,0.8,nlp\n"
        "\n"
        "bert-s2,bert two,FAILED,,bert,2,NaN,,\n",
    )
    assert read_entries(path) == {
        "bert-s1": {
            "status": "FINISHED",
            "start_time": 1700000000000,
            "params": {"model": "bert", "seed": "1"},
            "metrics": [{"key": "accuracy", "value": 0.81}, {"key": "f1", "value": 0.8}],
            "tags": {"team": "nlp"},
        },
        "bert-s2": {
            "run_name": "bert two",
            "status": "FAILED",
            "params": {"model": "bert", "seed": "2"},
            "metrics": [{"key": "accuracy", "value": pytest.approx(float("nan"), nan_ok=True)}],
        },
    }


def test_without_a_key_column_the_run_name_is_the_key(tmp_path: Path) -> None:
    path = _file(tmp_path, "r.csv", "runName,params.lr\nfirst,0.1\nsecond,0.2\n")
    assert read_entries(path) == {
        "first": {"run_name": "first", "params": {"lr": "0.1"}},
        "second": {"run_name": "second", "params": {"lr": "0.2"}},
    }


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_yaml_and_json_hold_the_map_of_runs_with_the_schemas_names(tmp_path: Path, suffix: str) -> None:
    runs = {
        "a": {
            "runName": "run a",
            "params": {"runName": "kept"},
            "metrics": [{"key": "m", "value": 1, "step": 2}],
        },
        "b": {"run_name": "snake is taken too", "endTime": 5},
    }
    path = _file(tmp_path, f"runs{suffix}", json.dumps(runs))  # JSON is YAML
    assert read_entries(path) == {
        "a": {"run_name": "run a", "params": {"runName": "kept"}, "metrics": [{"key": "m", "value": 1, "step": 2}]},
        "b": {"run_name": "snake is taken too", "end_time": 5},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("none.csv", None, "no file at {path} (a path relative to the program's folder)"),
        ("r.txt", "x", "{path}: a runs file is .csv, .yaml, .yml or .json, got '.txt'"),
        ("r.csv", "key,params.a,colour\nx,1,red\n", "{path}, line 1: column 'colour' is not one of a runs file's"),
        ("r.csv", "params.a\n1\n", "{path}, line 1: no `key` column (nor `runName`)"),
        ("r.csv", "key,metrics.acc\nx,high\n", "{path}, line 2: metrics.acc must be a number, got 'high'"),
        ("r.csv", "key,startTime\nx,soon\n", "{path}, line 2: startTime must be a whole number, got 'soon'"),
        ("r.csv", "key,params.a\nx,1\ny,2,3\n", "{path}, line 3: 3 cells where the header names 2"),
        ("r.csv", "key,params.a\nx,1\nx,2\n", "{path}, line 3: entry 'x' is on an earlier row too"),
        ("r.csv", "key,params.a\n,1\n", "{path}, line 2: the row names no entry"),
        ("r.yaml", "a: [1, 2\n", "{path}, line 2: not YAML"),
        ("r.json", '{"a": }', "{path}, line 1: not JSON"),
        ("r.yaml", "- a\n- b\n", "{path}: must hold a map from an entry's key to the entry, got list"),
        ("r.yaml", "a: 3\n", "{path}: entry 'a' must be a map of a run's inputs, got int"),
    ],
)
def test_a_file_check_cannot_read_is_named_with_its_line(
    tmp_path: Path, name: str, text: str | None, says: str
) -> None:
    path = str(tmp_path / name) if text is None else _file(tmp_path, name, text)
    _, failures = _checked({"experiment_id": "1", "runs_file": FileAsset(path)})
    assert len(failures) == 1, failures
    prop, reason = failures[0]
    assert prop == "runs_file"
    assert reason.startswith(says.format(path=path)), reason


def test_an_entry_of_the_file_is_checked_as_a_run_and_named_with_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, "r.csv", "key,status,params.a\nok,FINISHED,1\nbad,DONE,2\n")
    _, failures = _checked({"experiment_id": "1", "runs_file": FileAsset(path)})
    assert failures == [
        (
            'runs["bad"].status',
            f"must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED (an entry of the runs file {path})",
        )
    ]


def test_runs_and_the_file_together_give_each_key_once(tmp_path: Path) -> None:
    path = _file(tmp_path, "r.csv", "key,params.a\nfrom-file,1\n")
    checked, failures = _checked({"experiment_id": "1", "runs": {"inline": {}}, "runs_file": FileAsset(path)})
    assert failures == []
    assert sorted(checked["runs"]) == ["from-file", "inline"]
    _, failures = _checked({"experiment_id": "1", "runs": {"from-file": {}}, "runs_file": FileAsset(path)})
    assert failures == [
        ("runs_file", "entry 'from-file' is in runs too (1 key(s) in both); give each key in one place")
    ]


def test_runs_or_a_runs_file_is_required_and_a_path_is_not_a_file_asset(tmp_path: Path) -> None:
    assert _checked({"experiment_id": "1"})[1] == [
        ("runs", "is required (a map from a key you choose to a run's inputs; {} for none), or runsFile")
    ]
    path = _file(tmp_path, "r.csv", "key\n")
    assert _checked({"experiment_id": "1", "runs_file": path})[1] == [
        ("runs_file", "must be a FileAsset (the file of the table's entries), got str")
    ]
    checked, failures = _checked({"experiment_id": "1", "runs_file": FileAsset(path)})
    assert (checked["runs"], failures) == ({}, []), "a file of no rows is a table of no runs"

"""A ``RunTable``'s entries read from a file (``runsFile``): an evaluation table kept as the CSV or YAML its jobs
write, rather than as values in the program.

Why a file the provider reads, not a program that reads it: a thousand entries as program values cost every
preview the language host's work on them (the YAML host parses and type-checks each; the Python SDK serializes
each, seconds per thousand). Named as a file, the program sends one asset; Check reads the file and hands the
engine the entries it holds, so the state, the diff (``runs["<key>"].<property>``) and every step are those of
entries written in ``runs``.

Formats, by the file's suffix:

- ``.yaml``/``.yml``/``.json``: a map from the entry's key to the entry, with the schema's names (``runName``,
  ``params``, ``metrics``: as in a YAML program's ``runs``; snake_case names are taken too).
- ``.csv``: a row per run. ``key`` names the entry (without that column, ``runName`` does); ``params.<name>``,
  ``tags.<name>`` and ``metrics.<name>`` (one point at step 0) hold the run's values, one column each; the
  entry's other plain properties (``runName``, ``status``, ``startTime``, ``endTime``, ``description``,
  ``adoptRunId``) by their names. An empty cell is no value.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pulumi_mlflow_runs.core.definitions import Prop
from pulumi_mlflow_runs.core.prop_names import convert
from pulumi_mlflow_runs.core.run_spec import is_unknown
from pulumi_mlflow_runs.core.table_definitions import RUN_TABLE_ENTRY

_PER_NAME = ("params", "tags", "metrics")
"""A CSV's ``<property>.<name>`` columns: one param, tag or metric of the run each."""
_CSV_PLAIN = ("string", "integer", "number", "boolean")


class TableFileProblem(ValueError):
    """What is wrong with the file, and where: the message Check reports under ``runsFile``."""


def read_entries(path: str) -> dict[str, dict[str, Any]]:
    """The file's entries by key, with the core's (snake_case) names.

    Raises ``TableFileProblem`` naming the file, and the line or entry, for anything it cannot read as entries.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml", ".json"):
        raise TableFileProblem(f"{path}: a runs file is .csv, .yaml, .yml or .json, got {suffix or 'no suffix'!r}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if suffix == ".csv":
                return _from_csv(path, csv.reader(f), RUN_TABLE_ENTRY.fields)
            text = f.read()
    except FileNotFoundError:
        raise TableFileProblem(f"no file at {path} (a path relative to the program's folder)") from None
    except UnicodeDecodeError as exc:
        raise TableFileProblem(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TableFileProblem(f"{path} cannot be read: {exc.strerror or exc}") from None
    return _from_map(path, _parsed(path, text, suffix), RUN_TABLE_ENTRY.fields)


def _parsed(path: str, text: str, suffix: str) -> Any:
    try:
        return json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TableFileProblem(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        raise TableFileProblem(f"{path}{at}: not YAML ({getattr(exc, 'problem', None) or exc})") from None


def _from_map(path: str, data: Any, fields: Sequence[Prop]) -> dict[str, dict[str, Any]]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TableFileProblem(f"{path}: must hold a map from an entry's key to the entry, got {type(data).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise TableFileProblem(f"{path}: an entry's key must be a non-empty string, got {key!r}")
        if not isinstance(value, Mapping):
            raise TableFileProblem(f"{path}: entry {key!r} must be a map of a run's inputs, got {type(value).__name__}")
        out[key] = convert(value, fields, to_snake=True)
    return out


def _from_csv(path: str, rows: Any, fields: Sequence[Prop]) -> dict[str, dict[str, Any]]:
    header = next(rows, None)
    if header is None:
        return {}
    plain = {p.camel: p for p in fields if p.type in _CSV_PLAIN}
    columns = [_column(path, name, plain) for name in header]
    by_key = "key" in header
    if not by_key and "runName" not in header:
        raise TableFileProblem(f"{path}, line 1: no `key` column (nor `runName`) to name each row's entry")
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        line = rows.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise TableFileProblem(f"{path}, line {line}: {len(row)} cells where the header names {len(header)}")
        entry: dict[str, Any] = {}
        key = ""
        for (kind, name, prop), cell in zip(columns, row, strict=True):
            if cell == "":
                continue
            if kind == "key":
                key = cell
            elif kind == "metrics":
                entry.setdefault("metrics", []).append({"key": name, "value": _number(path, line, name, cell)})
            elif kind in ("params", "tags"):
                entry.setdefault(kind, {})[name] = cell
            else:
                assert prop is not None
                entry[prop.name] = _plain(path, line, prop, cell)
        if not by_key:
            key = str(entry.get("run_name") or "")
        if not key:
            raise TableFileProblem(f"{path}, line {line}: the row names no entry (its `key` cell is empty)")
        if key in out:
            raise TableFileProblem(f"{path}, line {line}: entry {key!r} is on an earlier row too; give each key once")
        out[key] = entry
    return out


def _column(path: str, name: str, plain: Mapping[str, Prop]) -> tuple[str, str, Prop | None]:
    if name == "key":
        return ("key", name, None)
    head, dot, rest = name.partition(".")
    if dot and head in _PER_NAME and rest:
        return (head, rest, None)
    if name in plain:
        return ("plain", name, plain[name])
    known = ", ".join(["key", *plain, *(f"{p}.<name>" for p in _PER_NAME)])
    raise TableFileProblem(f"{path}, line 1: column {name!r} is not one of a runs file's ({known})")


def _number(path: str, line: int, name: str, cell: str) -> float:
    try:
        return float(cell)  # NaN and ±Infinity too: a run's rules say what the server takes of them
    except ValueError:
        raise TableFileProblem(f"{path}, line {line}: metrics.{name} must be a number, got {cell!r}") from None


def _plain(path: str, line: int, prop: Prop, cell: str) -> Any:
    if prop.type == "string":
        return cell
    if prop.type == "boolean":
        if cell.lower() in ("true", "false"):
            return cell.lower() == "true"
        raise TableFileProblem(f"{path}, line {line}: {prop.camel} must be true or false, got {cell!r}")
    try:
        return int(cell) if prop.type == "integer" else float(cell)
    except ValueError:
        what = "a whole number" if prop.type == "integer" else "a number"
        raise TableFileProblem(f"{path}, line {line}: {prop.camel} must be {what}, got {cell!r}") from None


def with_file_entries(table: Mapping[str, Any]) -> tuple[dict[str, Any], set[str] | None, list[tuple[str, str]]]:
    """``(table with the runs file's entries in runs, the keys that came from the file, failures)``; the keys are
    None where no file was read (none given, unknown in a preview, or a failure).

    Check's alone: the entries it returns are what the engine keeps as the table's ``runs``, so every later step
    reads them there and no step after Check reads the file. A key both in ``runs`` and in the file is a failure.
    """
    asset = table.get("runs_file")
    if asset is None or is_unknown(asset):
        return dict(table), None, []
    path = getattr(asset, "path", None)
    if not isinstance(path, str):
        kind = type(asset).__name__
        return dict(table), None, [("runs_file", f"must be a FileAsset (the file of the table's entries), got {kind}")]
    try:
        found = read_entries(path)
    except TableFileProblem as exc:
        return dict(table), None, [("runs_file", str(exc))]
    inline = table.get("runs")
    if inline is None:
        inline = {}
    if is_unknown(inline) or not isinstance(inline, Mapping):
        return dict(table), None, []  # check_table names what is wrong with runs; the file waits for it
    both = sorted(set(inline) & set(found))
    if both:
        reason = f"entry {both[0]!r} is in runs too ({len(both)} key(s) in both); give each key in one place"
        return dict(table), None, [("runs_file", reason)]
    return {**table, "runs": {**inline, **found}}, set(found), []

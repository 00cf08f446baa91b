"""Detailed diffs: the property paths a reviewer reads in ``pulumi preview --diff``, from the core's verdict.

The core (``run_diff``) decides update or replace per property; this names *where* within it: the one
appended point of ``metrics`` as ``metrics[6]`` (ADD), a changed param as ``params.lr`` (UPDATE_REPLACE),
an edited file as ``artifacts["report.md"]``. Paths are in the schema's names and point into the inputs
(``inputDiff``), which the engine sends to Diff as old inputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from pulumi.asset import StringAsset
from pulumi.runtime.proto import provider_pb2

from pulumi_mlflow_runs.core.artifacts.files import Elided, Source, digest
from pulumi_mlflow_runs.core.change_rules import canonical, match_points
from pulumi_mlflow_runs.core.definitions import camel
from pulumi_mlflow_runs.core.run_spec import is_unknown

Kind: TypeAlias = provider_pb2.PropertyDiff.Kind.ValueType
ADD, DELETE, UPDATE = provider_pb2.PropertyDiff.ADD, provider_pb2.PropertyDiff.DELETE, provider_pb2.PropertyDiff.UPDATE
_REPLACING = {
    provider_pb2.PropertyDiff.ADD: provider_pb2.PropertyDiff.ADD_REPLACE,
    provider_pb2.PropertyDiff.DELETE: provider_pb2.PropertyDiff.DELETE_REPLACE,
    provider_pb2.PropertyDiff.UPDATE: provider_pb2.PropertyDiff.UPDATE_REPLACE,
}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key_path(prop: str, key: str) -> str:
    """``tags.team``, or ``artifacts["report.md"]`` where the key is not a plain name."""
    return f"{prop}.{key}" if _PLAIN_KEY.match(key) else f"{prop}[{json.dumps(key)}]"


def _kind(kind: Kind, replaces: bool) -> Kind:
    return _REPLACING[kind] if replaces else kind


def _map_diff(prop: str, old: Mapping[str, Any], new: Mapping[str, Any], replaces: bool) -> dict[str, Kind]:
    out: dict[str, Kind] = {}
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out[key_path(prop, key)] = _kind(ADD, replaces and prop != "params")
        elif key not in new:
            out[key_path(prop, key)] = _kind(DELETE, replaces)
        elif canonical(old[key]) != canonical(new[key]):
            out[key_path(prop, key)] = _kind(UPDATE, replaces)
    return out


def _list_diff(prop: str, key: str, old: Sequence[Any], new: Sequence[Any], replaces: bool) -> dict[str, Kind]:
    """Appended items as ADD at their index; a list that drops or alters items as a whole."""
    if replaces:
        return {prop: provider_pb2.PropertyDiff.UPDATE_REPLACE}
    if key == "metrics":
        paired, _ = match_points(list(old), list(new))
        return {f"{prop}[{i}]": ADD for i, was in enumerate(paired) if was is None}
    seen = {canonical(x) for x in old}
    return {f"{prop}[{i}]": ADD for i, item in enumerate(new) if canonical(item) not in seen}


def _hash(value: Any) -> Any:
    """The engine's hash of an asset: a text the engine sent whole (the empty one, which it sends as its hash
    alone and ``wire`` reads back as text) hashes as the engine hashes it."""
    if isinstance(value, Elided):
        return value.hash
    if isinstance(value, StringAsset) and isinstance(value.text, str):
        return digest(Source(text=value.text))["sha256"]
    return canonical(value)


def artifact_diff(old: Mapping[str, Any] | None, new: Any) -> dict[str, Kind]:
    """Files by path, compared by the engine's hash of each asset (Diff gets assets without contents)."""
    if is_unknown(new):
        return {"artifacts": UPDATE}
    old_m, new_m = dict(old or {}), dict(new or {})
    out: dict[str, Kind] = {}
    for key in sorted(set(old_m) | set(new_m)):
        if key not in old_m:
            out[key_path("artifacts", key)] = ADD
        elif key not in new_m:
            out[key_path("artifacts", key)] = DELETE
        elif _hash(old_m[key]) != _hash(new_m[key]) or _hash(new_m[key]) is None:
            out[key_path("artifacts", key)] = UPDATE
    return out


def _file_diff(old_inputs: Mapping[str, Any], news: Mapping[str, Any], replaces: bool) -> dict[str, Kind]:
    """A metrics file: the file itself, and each key whose count of points Check read changed
    (``metricsFileSummary.points.loss``), which the display shows as ``loss: 10000 => 10010``."""
    old, new = old_inputs.get("metrics_file"), news.get("metrics_file")
    out = {"metricsFile": _kind(ADD if old is None else DELETE if new is None else UPDATE, replaces)}
    old_points = (old_inputs.get("metrics_file_summary") or {}).get("points") or {}
    new_points = (news.get("metrics_file_summary") or {}).get("points") or {}
    if isinstance(old_points, Mapping) and isinstance(new_points, Mapping):
        out.update(_map_diff("metricsFileSummary.points", old_points, new_points, replaces))
    return out


def detailed(
    keys: Sequence[str], replaces: Sequence[str], old_inputs: Mapping[str, Any], news: Mapping[str, Any]
) -> dict[str, Kind]:
    """``{path: kind}`` for the changed snake_case ``keys`` of a run or an experiment (``artifacts`` aside)."""
    out: dict[str, Kind] = {}
    for key in keys:
        name, replacing = camel(key), key in replaces
        old, new = old_inputs.get(key), news.get(key)
        if is_unknown(new):
            out[name] = _kind(UPDATE, replacing)
        elif key in ("params", "tags") and isinstance(old, Mapping) and isinstance(new, Mapping):
            found = _map_diff(name, old, new, replacing)
            out.update(found or {name: _kind(UPDATE, replacing)})
        elif key in ("metrics", "dataset_inputs", "model_inputs", "model_outputs"):
            found = _list_diff(name, key, old or [], new or [], replacing)
            out.update(found or {name: _kind(UPDATE, replacing)})
        elif key == "metrics_file":
            out.update(_file_diff(old_inputs, news, replacing))
        elif key == "lifecycle_stage":
            out["lifecycleStage"] = UPDATE  # deleted outside Pulumi: the update restores it
        else:
            kind = ADD if old is None else DELETE if new is None else UPDATE
            out[name] = _kind(kind, replacing)
    return out

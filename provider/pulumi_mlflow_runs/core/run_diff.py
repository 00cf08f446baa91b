"""What a change means: the diff rules, pure and local (no request, no HTTP or pydantic import).

``diff_run`` compares the old *outputs* with the new checked inputs, as the engine passes them to Diff.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_mlflow_runs.core.artifacts.files import differs
from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS, REPLACE_KEYS, is_unknown


@dataclass(frozen=True)
class RunDiff:
    replaces: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.replaces or self.updates)


def _blank(value: Any) -> bool:
    return value is None or value in ({}, [])


def _ident(point: Mapping[str, Any]) -> tuple[Any, ...]:
    get = point.get
    return (get("key"), get("value"), get("step"), get("dataset_name"), get("dataset_digest"), get("model_id"))


def match_points(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any] | None], int]:
    """Pair each declared point with a logged one: ``(logged point or None per new point, unpaired logged)``.

    Order does not matter (MLflow orders points by step and time). A declared point without timestamp
    pairs with a logged point that has any timestamp; one with a timestamp needs the same timestamp.
    """
    # A declaration without timestamp may pair in order only when none has one: a timestamped one
    # declared later must not find its point taken (the pool below serves those first).
    loose = (None,) if not any(n.get("timestamp") is not None for n in new) else ()
    same_order = len(new) >= len(old) and all(
        _ident(o) == _ident(n) and n.get("timestamp") in (*loose, o.get("timestamp"))
        for o, n in zip(old, new, strict=False)
    )
    if same_order:  # the usual case: the program lists what was logged, then appends
        return [*old, *([None] * (len(new) - len(old)))], 0
    pool: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for point in old:
        pool.setdefault(_ident(point), []).append(point)
    paired: list[Mapping[str, Any] | None] = [None] * len(new)
    # timestamped declarations first, so a timestamp-less one cannot take the point they need
    for i in sorted(range(len(new)), key=lambda i: new[i].get("timestamp") is None):
        candidates = pool.get(_ident(new[i]), [])
        wanted = new[i].get("timestamp")
        for j, point in enumerate(candidates):
            if wanted is None or point.get("timestamp") == wanted:
                paired[i] = candidates.pop(j)
                break
    return paired, sum(len(left) for left in pool.values())


def canonical(value: Any) -> str:
    """A comparable form of a value: state from the engine carries 3 as 3.0, and maps have no order."""
    return json.dumps(_ints(value), sort_keys=True, default=str)


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_ints(v) for v in value]
    return value


def _list_change(key: str, old: Any, new: Any) -> str | None:
    """'update' when ``new`` only adds to ``old``, 'replace' when it drops or alters an item, else None."""
    old_l, new_l = list(old or []), list(new or [])
    if key == "metrics":
        paired, unpaired = match_points(old_l, new_l)
        added = paired.count(None)
    else:
        old_keys, new_keys = {canonical(x) for x in old_l}, {canonical(x) for x in new_l}
        unpaired, added = len(old_keys - new_keys), len(new_keys - old_keys)
    if unpaired:
        return "replace"
    return "update" if added else None


_UNSET_MEANS_ANY = ("start_time", "end_time", "run_name", "status")


def diff_run(olds: Mapping[str, Any], news: Mapping[str, Any]) -> RunDiff:
    replaces: list[str] = []
    updates: list[str] = []
    if olds.get("lifecycle_stage") == "deleted":
        updates.append("lifecycle_stage")
    for key in INPUT_KEYS:
        old, new = olds.get(key), news.get(key)
        if is_unknown(new):
            (replaces if key in REPLACE_KEYS else updates).append(key)
            continue
        if key == "artifacts":  # the old side is the stored hashes (not an echo of the input); new files hashed
            if differs(olds.get("artifact_files"), new):
                updates.append(key)
            continue
        if _blank(old) and _blank(new):
            continue
        if key in _UNSET_MEANS_ANY and new is None:
            continue  # MLflow cannot unset these: an undeclared one accepts whatever the run has
        verdict: str | None
        if key in REPLACE_KEYS:
            verdict = "replace" if old != new else None
        elif key == "params":
            old_p, new_p = dict(old or {}), dict(new or {})
            if any(k not in new_p or new_p[k] != v for k, v in old_p.items()):
                verdict = "replace"  # MLflow params are write-once
            else:
                verdict = "update" if set(new_p) - set(old_p) else None
        elif key in ("metrics", "dataset_inputs", "model_inputs", "model_outputs"):
            verdict = _list_change(key, old, new)
        else:
            verdict = "update" if old != new else None
        if verdict == "replace":
            replaces.append(key)
        elif verdict == "update":
            updates.append(key)
    return RunDiff(tuple(replaces), tuple(updates))

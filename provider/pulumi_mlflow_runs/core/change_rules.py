"""What a change to one property means: named rules, which the property definitions carry.

Each rule takes the old value (from state) and the new checked input, neither of them unknown, and answers
``None`` (nothing to do), ``"update"`` or ``"replace"``. ``definitions`` gives every input of every resource
its rule (``Prop.change``), and ``run_diff.diff_props`` asks them in turn; nothing else decides a property's
verdict. The model is terraform-plugin-framework's plan modifiers (``RequiresReplace``, ``RequiresReplaceIf``,
``UseStateForUnknown``): one small unit each, tested as such, reused by name.

A rule's ``requires_replace`` says that every change replaces. It is the schema's ``replaceOnChanges`` and
what a value still unknown in a preview means: a replace for such a rule, an update for any other (it may
turn out to be no change, as ``UseStateForUnknown`` lets an unknown be).

Pure and local: no request, no HTTP or pydantic import (Check and Diff import this).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pulumi_mlflow_runs.core import metrics_file
from pulumi_mlflow_runs.core.artifacts.files import differs

Verdict: TypeAlias = Literal["update", "replace"]
Judge: TypeAlias = Callable[[Any, Any], Verdict | None]


@dataclass(frozen=True)
class ChangeRule:
    """A named rule: ``rule(old, new)`` is ``None``, ``"update"`` or ``"replace"``."""

    name: str
    judge: Judge = dataclasses.field(repr=False, compare=False)
    requires_replace: bool = False
    """Every change replaces: the schema's ``replaceOnChanges``, and an unknown in a preview replaces."""
    stored: str | None = None
    """The output the old value is read from, where it is not the property's own (artifacts: their hashes)."""
    checked: str | None = None
    """The checked input the new value is read from, where it is not the property's own (a metrics file: what
    Check read of it, since Diff is handed only the file's hash)."""

    def __call__(self, old: Any, new: Any) -> Verdict | None:
        return self.judge(old, new)

    @property
    def on_unknown(self) -> Verdict:
        """The verdict for a value still unknown in a preview."""
        return "replace" if self.requires_replace else "update"


def rule(
    *, requires_replace: bool = False, stored: str | None = None, checked: str | None = None
) -> Callable[[Judge], ChangeRule]:
    """Make a judging function a rule of that name."""

    def named(judge: Judge) -> ChangeRule:
        return ChangeRule(judge.__name__, judge, requires_replace, stored, checked)

    return named


def blank(value: Any) -> bool:
    """None, an empty map or an empty list: no value."""
    return value is None or value in ({}, [])


def _same(old: Any, new: Any) -> bool:
    return (blank(old) and blank(new)) or old == new


@rule(requires_replace=True)
def replace_on_change(old: Any, new: Any) -> Verdict | None:
    """Any change replaces (terraform's ``RequiresReplace``): MLflow has no call that changes it in place."""
    return None if _same(old, new) else "replace"


@rule()
def update_on_change(old: Any, new: Any) -> Verdict | None:
    """Any change is an update (the default in every Pulumi provider)."""
    return None if _same(old, new) else "update"


@rule()
def write_once_map(old: Any, new: Any) -> Verdict | None:
    """MLflow params: a new key is an update; a changed or removed key a replace (a logged param is final)."""
    old_m, new_m = dict(old or {}), dict(new or {})
    if any(k not in new_m or new_m[k] != v for k, v in old_m.items()):
        return "replace"
    return "update" if new_m.keys() - old_m.keys() else None


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


@rule()
def append_only(old: Any, new: Any) -> Verdict | None:
    """A list MLflow only appends to (datasets, models): new items are an update, a dropped or altered one a
    replace; order does not count."""
    old_keys, new_keys = {canonical(x) for x in old or []}, {canonical(x) for x in new or []}
    if old_keys - new_keys:
        return "replace"
    return "update" if new_keys - old_keys else None


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


@rule()
def append_only_points(old: Any, new: Any) -> Verdict | None:
    """Metric points (``match_points``): new points are an update that logs only them; a logged point
    dropped or altered (value, step, timestamp, dataset, model) a replace."""
    paired, unpaired = match_points(list(old or []), list(new or []))
    if unpaired:
        return "replace"
    return "update" if None in paired else None


@rule(stored="artifact_files")
def by_stored_hash(stored: Any, new: Any) -> Verdict | None:
    """Artifacts: the declared files against the hashes state keeps per uploaded file (``artifact_files``, not
    an echo of the input), so a file changed since is seen; an upload or a delete is an update."""
    return "update" if differs(stored, new) else None


@rule(stored=metrics_file.LOGGED, checked=metrics_file.SUMMARY)
def logged_file_rows(logged: Any, summary: Any) -> Verdict | None:
    """A metrics file: the logged part in state (rows, bytes, sha256) against what Check read. Rows added at the
    end are an update that logs only them; logged rows changed or gone (the digest of the file's first logged
    bytes differs) a replace, as for ``append_only_points``. Only a file that changed is read."""
    return metrics_file.verdict(logged, summary)


@rule()
def restore_if_deleted(old: Any, new: Any) -> Verdict | None:
    """Drift, judged from state alone: a resource deleted outside Pulumi (``lifecycle_stage``, as a refresh read
    it) is restored by an update."""
    return "update" if old == "deleted" else None


def unset_accepts_any(inner: ChangeRule) -> ChangeRule:
    """``inner``, except that an undeclared value (``None``) accepts whatever the resource has: MLflow cannot
    unset a run's start or end time, name or status."""

    def judge(old: Any, new: Any) -> Verdict | None:
        return None if new is None else inner(old, new)

    return dataclasses.replace(inner, name=f"unset_accepts_any({inner.name})", judge=judge)


def empty_is_unset(inner: ChangeRule) -> ChangeRule:
    """``inner`` with an empty value (``""``, ``{}``, …) taken as no value at all (an experiment's inputs)."""

    def judge(old: Any, new: Any) -> Verdict | None:
        return inner(old or None, new or None)

    return dataclasses.replace(inner, name=f"empty_is_unset({inner.name})", judge=judge)

"""The two compact forms a front door keeps a run's logged metric points in, and how each reads back.

The core hands a door every point as logged (``run_plan.outputs_for``'s ``metrics``). Echoed as a list of
``{key, value, step, timestamp}`` dicts they would cost as much again as the inputs, so each door stores
them in the form its host allows:

- columns per key (``pack_points``), in the ``logged_points`` output: the dynamic door, whose Diff is handed
  only the old outputs, so the state must hold every point; field names and keys are written once per key
  instead of once per point, which halves them;
- the timestamps chosen for points declared without one (``stamps_of``), in ``stamped_at``: the plugin,
  whose Diff is handed the old inputs too, so the inputs plus these stamps are every point (``logged_from``).

``metrics`` itself is not a dynamic output: the engine shows the inputs as the outputs during a preview, so
an output of that name must keep the input's shape. ``from_state`` reads the columns back (and the list form
state held before ``logged_points`` existed, which it leaves as it is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_COLUMNS = ("step", "value", "timestamp")
_OPTIONAL = ("dataset_name", "dataset_digest", "model_id")


def pack_points(points: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, list[Any]]] | None:
    """``{key: {"step": [...], "value": [...], "timestamp": [...]}}``, plus a column for
    ``dataset_name``, ``dataset_digest`` or ``model_id`` where a point of that key has one."""
    if points is None:
        return None
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for point in points:
        rows.setdefault(point["key"], []).append(point)
    packed: dict[str, dict[str, list[Any]]] = {}
    for key, group in rows.items():
        names = [*_COLUMNS, *(n for n in _OPTIONAL if any(p.get(n) is not None for p in group))]
        packed[key] = {name: [p.get(name) for p in group] for name in names}
    return packed


def unpack_points(value: Any) -> list[dict[str, Any]] | None:
    """The points of ``pack_points``' form (or of the older list form) as dicts, grouped by key."""
    if value is None or isinstance(value, list):
        return value
    points: list[dict[str, Any]] = []
    for key, columns in value.items():
        names = list(columns)
        for cells in zip(*(columns[n] for n in names), strict=True):
            point = {"key": key, **{n: cell for n, cell in zip(names, cells, strict=True) if cell is not None}}
            points.append(point)
    return points


def from_state(props: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs in the columns form as the engine stored them, with the logged points back as the ``metrics``
    list (``outputs_for``'s form)."""
    olds = dict(props)
    if "logged_points" in olds:
        olds["metrics"] = unpack_points(olds.pop("logged_points"))
    return olds


def with_columns(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """``outputs_for``'s form with the logged points as ``logged_points`` columns instead of ``metrics``."""
    out = dict(outputs)
    out["logged_points"] = pack_points(out.pop("metrics", None))
    return out


def stamps_of(declared: Sequence[Mapping[str, Any]], logged: Sequence[Mapping[str, Any]]) -> list[list[int]] | None:
    """The timestamps the provider gave the ``declared`` points that had none (``logged`` is the same points
    in the same order, as logged), as runs ``[[timestamp, count], ...]``: the points of one ``up`` share
    one timestamp, so this is a pair or two however many points there are."""
    if len(declared) != len(logged):
        raise ValueError(f"{len(declared)} declared points against {len(logged)} logged")
    runs: list[list[int]] = []
    for want, got in zip(declared, logged, strict=True):
        if want.get("timestamp") is None:
            stamp = int(got["timestamp"])
            if runs and runs[-1][0] == stamp:
                runs[-1][1] += 1
            else:
                runs.append([stamp, 1])
    return runs or None


def logged_from(declared: Sequence[Mapping[str, Any]], stamps: Any) -> list[dict[str, Any]] | None:
    """The points as logged: ``declared`` (in ``run_spec``'s normal form), each missing timestamp taken from
    ``stamps`` in order; None when they do not fit each other (then the server is the one to ask)."""
    times = (int(stamp) for stamp, count in (stamps or ()) for _ in range(int(count)))
    out: list[dict[str, Any]] = []
    for point in declared:
        if point.get("timestamp") is None:
            stamp = next(times, None)
            if stamp is None:
                return None
            out.append({**point, "timestamp": stamp})
        else:
            out.append(dict(point))
    return out if next(times, None) is None else None

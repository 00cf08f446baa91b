"""How a run's logged metric points are kept in state: the ``logged_points`` output, in columns per key.

Diff is handed only the old outputs, so the outputs must hold every logged point with the timestamp it
was logged with. Echoed as the ``metrics`` list of ``{key, value, step, timestamp}`` dicts they cost as
much again as the inputs; in columns, field names and keys are written once per metric key instead of
once per point, which halves them. ``metrics`` itself is not an output: the engine shows the inputs as
the outputs during a preview, so an output of that name must keep the input's shape, and the SDK gives
the program its own value for an input the provider does not return. Everything that reads state
converts back with ``from_state`` first; state written before ``logged_points`` existed holds the
``metrics`` list instead, which it leaves as it is.
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
    """Outputs as the engine stored them, with the logged points back as the ``metrics`` list."""
    olds = dict(props)
    if "logged_points" in olds:
        olds["metrics"] = unpack_points(olds.pop("logged_points"))
    return olds

"""camelCase as programs and files name properties, snake_case in the core: a value's names renamed by its
definitions, both ways.

The names come from ``core.definitions``; what a user keys (params, tags, artifact paths, the keys of a
dataset input's tags) is data and is never renamed. The plugin renames every request with this; the core renames
a ``RunTable``'s file of entries (``core.table_file``), written with the schema's names whatever the door.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_mlflow_runs.core.definitions import Prop

_TABLES: dict[tuple[int, bool], tuple[Sequence[Prop], dict[str, tuple[str, Prop]]]] = {}


def _by(props: Sequence[Prop], camel_keys: bool) -> dict[str, tuple[str, Prop]]:
    """``{name as sent: (name to give, definition)}``, built once per definitions (a request of 20,000
    metric points converts each point against the same ones)."""
    key = (id(props), camel_keys)
    found = _TABLES.get(key)
    if found is None or found[0] is not props:
        table = {(p.camel if camel_keys else p.name): ((p.name if camel_keys else p.camel), p) for p in props}
        found = _TABLES[key] = (props, table)
    return found[1]


def _renames(prop: Prop | None) -> bool:
    """Whether a value of ``prop`` holds names to rename (an object's fields), at any depth: the others (a map of
    the user's tags, a list of strings) are copied as they are, not walked value by value."""
    if prop is None:
        return False
    found = _RENAMES.get(id(prop))
    if found is None or found[0] is not prop:
        deep = prop.type == "object" or (prop.type in ("array", "map") and _renames(prop.items))
        found = _RENAMES[id(prop)] = (prop, deep)
    return found[1]


_RENAMES: dict[int, tuple[Prop, bool]] = {}


def _convert(value: Any, prop: Prop | None, to_snake: bool) -> Any:
    if prop is None or value is None:
        return value
    if prop.type == "array" and isinstance(value, list):
        if not _renames(prop.items):
            return list(value)
        return [_convert(item, prop.items, to_snake) for item in value]
    if prop.type == "object" and isinstance(value, Mapping):
        return convert(value, prop.fields, to_snake=to_snake)
    if prop.type == "map" and isinstance(value, Mapping):
        if not _renames(prop.items):
            return dict(value)
        return {k: _convert(v, prop.items, to_snake) for k, v in value.items()}
    return value


def convert(props: Mapping[str, Any], definitions: Sequence[Prop], *, to_snake: bool) -> dict[str, Any]:
    """``props`` with the names of ``definitions`` (and their fields) renamed; unknown keys kept as they are."""
    known = _by(definitions, camel_keys=to_snake)
    out: dict[str, Any] = {}
    for key, value in props.items():
        found = known.get(key)
        if found is None:
            out[key] = value
        else:
            name, prop = found
            out[name] = value if value is None else _convert(value, prop, to_snake)
    return out

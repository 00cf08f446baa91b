"""camelCase on the wire, snake_case in the core: property names and the paths Check reports, both ways.

The names come from ``core.definitions``; what a user keys (params, tags, artifact paths, the keys of a
dataset input's tags) is data and is never renamed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_mlflow_runs.core.definitions import Prop

_SEGMENT = re.compile(r"([^.\[]+)|\[(\d+)\]")


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


def _convert(value: Any, prop: Prop | None, to_snake: bool) -> Any:
    if prop is None or value is None:
        return value
    if prop.type == "array" and isinstance(value, list):
        return [_convert(item, prop.items, to_snake) for item in value]
    if prop.type == "object" and isinstance(value, Mapping):
        return convert(value, prop.fields, to_snake=to_snake)
    if prop.type == "map" and isinstance(value, Mapping):
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


def camel_path(path: str, definitions: Sequence[Prop]) -> str:
    """``metrics[3].dataset_name`` -> ``metrics[3].datasetName``; a map's key (``tags.my_tag``) stays."""
    out: list[str] = []
    fields: Sequence[Prop] | None = definitions
    current: Prop | None = None
    pos = 0
    while pos < len(path):
        if current is not None and current.type == "map":
            rest = path[pos:].lstrip(".")
            out.append(rest if rest.startswith("[") else "." + rest)  # the user's key: `tags.x`, `runs["a b"]`
            break
        match = _SEGMENT.match(path, pos + (1 if path[pos] == "." else 0))
        if match is None:
            out.append(path[pos:])
            break
        pos = match.end()
        if match.group(2) is not None:
            out.append(f"[{match.group(2)}]")
            current = current.items if current is not None else None
            fields = current.fields if current is not None else None
            continue
        name = match.group(1)
        prop = next((p for p in fields or () if p.name == name), None)
        out.append(("." if out else "") + (prop.camel if prop is not None else name))
        current = prop
        fields = prop.fields if prop is not None else None
    return "".join(out)

"""camelCase on the wire, snake_case in the core: property names (``core.prop_names``, which a table's file of
entries needs too) and the paths Check reports, both ways.

The names come from ``core.definitions``; what a user keys (params, tags, artifact paths, the keys of a
dataset input's tags) is data and is never renamed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pulumi_mlflow_runs.core.definitions import Prop
from pulumi_mlflow_runs.core.prop_names import convert

__all__ = ["camel_path", "convert"]

_SEGMENT = re.compile(r"([^.\[]+)|\[(\d+)\]")


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

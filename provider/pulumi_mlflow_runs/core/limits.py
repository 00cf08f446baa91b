"""MLflow's rules for names and metric values (the seed page), shared by Check of the inputs (``run_spec``) and
of a metrics file's rows (``metrics_file``). Pure: no request, no HTTP or pydantic import."""

from __future__ import annotations

import math
import posixpath
import re
from typing import Any

MAX_KEY_CHARS = 250
NONFINITE = ("NaN", "Infinity", "-Infinity")
_NAME_CHARS = re.compile(r"^[/\w.\- :]*$")


def key_problem(key: str, what: str) -> str | None:
    """Why ``key`` cannot name a metric, param or tag (``what``), or None: checked so nothing fails halfway."""
    if len(key) > MAX_KEY_CHARS:
        return f"{what} key is {len(key)} characters; the limit is {MAX_KEY_CHARS}"
    if not _NAME_CHARS.match(key):
        return f"{what} key {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'"
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        return f"{what} key {key!r} must not look like a relative or absolute path (it would resolve to {norm!r})"
    return None


def normalize_metric_value(value: Any) -> float | str | None:
    """A metric value in normal form: a finite float, or one of MLflow's non-finite strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if isinstance(value, str) and value in NONFINITE:
        return value
    return None

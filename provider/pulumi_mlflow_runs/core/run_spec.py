"""The ExperimentRun inputs: validation against the documented limits, and their normal form.

Pure functions over plain dicts, independent of any Pulumi host. Normal form means: integers are ints
(the engine sends every number as a float), metric values are floats or MLflow's non-finite strings,
optional fields that are absent are omitted, and list items carry only their declared keys.
Parts still unknown during a preview are passed through untouched: the engine checks again at ``up``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from pulumi.asset import Archive, FileAsset
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from pulumi_mlflow_runs.core import metrics_file
from pulumi_mlflow_runs.core.artifacts.files import Elided, check_artifacts
from pulumi_mlflow_runs.core.change_rules import canonical
from pulumi_mlflow_runs.core.definitions import (
    DATASET,
    METRIC_POINT,
    METRICS_FILE_SUMMARY,
    RUN_CREATE_ONLY,
    RUN_INPUTS,
    RUN_OUTPUTS,
    field_names,
)
from pulumi_mlflow_runs.core.limits import NONFINITE, key_problem, normalize_metric_value
from pulumi_mlflow_runs.core.settings import validate_deployment_name, validate_host

# ---- documented limits (the seed page) ----------------------------------------------------------------
MAX_BATCH_VALUE_CHARS = 250
"""Longest param or tag value log-batch takes; longer ones go through log-parameter / set-tag."""
MAX_PARAM_VALUE_BYTES = 500
MAX_TAG_VALUE_BYTES = 64 * 1024
MAX_INT64 = 2**63 - 1

STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
RUN_NAME_TAG = "mlflow.runName"
RESERVED_TAGS = ("pulumi.creation_token", "pulumi.resource_key", metrics_file.PROGRESS_TAG)
"""Tags the provider itself sets (see ``run_apply``)."""
RESOURCE_KEY_TAG = RESERVED_TAGS[1]
"""The resource's key (``creating:<key>`` until the create has written everything), so that the next
create of the same resource after an interrupted ``up`` takes over the half-made run instead of orphaning it."""

INPUT_KEYS = tuple(p.name for p in RUN_INPUTS)
REPLACE_KEYS = tuple(p.name for p in RUN_INPUTS if p.replaces)
TAG_PROPS = {p.name: p.tag for p in RUN_INPUTS if p.tag is not None}
"""Inputs kept in a run tag, by the tag (``description``: ``mlflow.note.content``): strings, sent and read back
as that tag, which the ``tags`` input may then not set too."""
DESCRIPTION_TAG = TAG_PROPS["description"]
CREATE_ONLY_KEYS = (*(p.name for p in RUN_CREATE_ONLY), "resource_key")
"""Inputs that matter only when the resource is created: never diffed, never in outputs. ``resource_key``
is the dynamic door's (its program computes it); the native door uses the URN's hash the same way."""
OUTPUT_KEYS = tuple(p.name for p in RUN_OUTPUTS)
ECHOED_IN = {
    "run": tuple(key for key in INPUT_KEYS if key not in ("host", "deployment_name")),
    "latest_metrics": ("metrics",),
    "artifact_uri": ("experiment_id",),
    "artifact_files": ("artifacts",),
    "metrics_file_logged": ("metrics_file",),
}
"""Outputs that repeat inputs under another name (an output with an input's own name is the engine's): an
output is secret wherever an input it repeats is. Each door adds the output its state form keeps the points in."""
NOT_ECHOED_KEYS = ("artifacts", "metrics_file")
"""Inputs not repeated in the outputs: they hold assets (and a StringAsset's text); the outputs keep
``artifact_files`` (hash, size, URI per file) and ``metrics_file_logged`` (how much of the file is logged)."""
CHECKED_KEYS = (METRICS_FILE_SUMMARY.name,)
"""Inputs Check adds (``metrics_file_summary``: what it read of the file): never given by a program, kept
as they are when the engine hands the checked inputs back."""
CHECKED_FROM = {METRICS_FILE_SUMMARY.name: "metrics_file"}
"""The input each of ``CHECKED_KEYS`` is read from: it is a secret where that input is one."""

_METRIC_KEYS = field_names(METRIC_POINT)
_DATASET_KEYS = field_names(DATASET)


_LEAVES = frozenset({int, float, bool, type(None)})


def is_unknown(value: Any) -> bool:
    """True if ``value`` is, or contains, a preview-time unknown (the host's ``Unknown`` or the wire string).

    Check and Diff walk every input with this (a table of a thousand entries, every value of each): one loop
    over a stack of what is left to look at, the plain JSON types state holds first.
    """
    kind = type(value)
    if kind is str:
        return bool(value == UNKNOWN)
    if kind in _LEAVES:
        return False
    left = [value]
    while left:
        item = left.pop()
        kind = type(item)
        if kind is dict:
            if UNKNOWN in item:
                return True
            values: Any = item.values()
        elif kind is list:
            values = item
        elif isinstance(item, Unknown):
            return True
        elif isinstance(item, str):
            if item == UNKNOWN:
                return True
            continue
        elif isinstance(item, Mapping):
            left.extend(item.keys())
            values = item.values()
        elif isinstance(item, (list, tuple)):
            values = item
        else:
            continue
        for v in values:
            vk = type(v)
            if vk is str:
                if v == UNKNOWN:
                    return True
            elif vk not in _LEAVES:
                left.append(v)
    return False


class _Checker:
    """Collects ``(property, reason)`` failures while normalizing."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []

    def fail(self, prop: str, reason: str) -> None:
        self.failures.append((prop, reason))

    def string(self, prop: str, value: Any, *, allow_empty: bool = True) -> str | None:
        if not isinstance(value, str):
            self.fail(prop, f"must be a string, got {_kind(value)}")
            return None
        if not allow_empty and not value:
            self.fail(prop, "must not be empty")
            return None
        return value

    def integer(self, prop: str, value: Any, *, minimum: int = 0) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(prop, f"must be a whole number, got {_kind(value)}")
            return None
        if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
            self.fail(prop, "must be a whole number (not a fraction, NaN or infinity)")
            return None
        number = int(value)
        if number < minimum or number > MAX_INT64:
            self.fail(prop, f"must be between {minimum} and {MAX_INT64} (a 64-bit integer)")
            return None
        return number

    def name(self, prop: str, key: Any, what: str) -> str | None:
        """MLflow's rules for metric, param and tag keys (``limits.key_problem``)."""
        key_s = self.string(prop, key, allow_empty=False)
        if key_s is None:
            return None
        problem = key_problem(key_s, what)
        if problem:
            self.fail(prop, problem)
            return None
        return key_s

    def connection(self, prop: str, value: Any) -> str | None:
        """``host`` (an http(s) URL without user info, query or fragment) or ``deployment_name``."""
        text = self.string(prop, value, allow_empty=False)
        if text is None:
            return None
        problem = validate_host(text) if prop == "host" else validate_deployment_name(text)
        if problem:
            self.fail(prop, problem)
            return None
        return text

    def mapping(self, prop: str, value: Any) -> Mapping[Any, Any] | None:
        if not isinstance(value, Mapping):
            self.fail(prop, f"must be a map of string to string, got {_kind(value)}")
            return None
        return value

    def sequence(self, prop: str, value: Any) -> list[Any] | None:
        if not isinstance(value, (list, tuple)):
            self.fail(prop, f"must be a list, got {_kind(value)}")
            return None
        return list(value)

    def one_server(self, given: Mapping[str, Any]) -> None:
        host, deployment = given.get("host"), given.get("deployment_name")
        # An unknown (a preview) may turn out to be nothing: only two known values are refused.
        if host is not None and deployment is not None and not is_unknown(host) and not is_unknown(deployment):
            self.fail("host", "give either host or deployment_name, not both")

    def item_keys(self, prop: str, item: Any, allowed: set[str], required: tuple[str, ...]) -> bool:
        if not isinstance(item, Mapping):
            self.fail(prop, f"must be an object, got {_kind(item)}")
            return False
        if item.keys() <= allowed and all(item.get(key) is not None for key in required):
            return True  # the common case, without building messages
        ok = True
        for key in sorted(set(item) - allowed):
            self.fail(f"{prop}.{key}", f"is not a known field (known: {', '.join(sorted(allowed))})")
            ok = False
        for key in required:
            if item.get(key) is None:
                self.fail(f"{prop}.{key}", "is required")
                ok = False
        return ok


def known_text(value: Any) -> str | None:
    """``value`` if it is a non-empty string a preview knows (a resource key, a table key), else None."""
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _utf8_len(value: str) -> int:
    return len(value.encode("utf-8"))


def _params(c: _Checker, raw: Any) -> dict[str, str] | None:
    mapping = c.mapping("params", raw)
    if mapping is None:
        return None
    out: dict[str, str] = {}
    for key, value in mapping.items():
        prop = f"params.{key}"
        key_s = c.name(prop, key, "param")
        if key_s is None:
            continue
        if not isinstance(value, str):
            c.fail(prop, f"must be a string, got {_kind(value)} (MLflow params are strings)")
            continue
        if _utf8_len(value) > MAX_PARAM_VALUE_BYTES:
            c.fail(prop, f"value is {_utf8_len(value)} bytes; the limit is {MAX_PARAM_VALUE_BYTES} bytes")
            continue
        out[key_s] = value
    return out


def _tags(c: _Checker, raw: Any, has_run_name: bool, declared: Mapping[str, str]) -> dict[str, str] | None:
    """``declared``: the tag-backed inputs given, by their tag (``TAG_PROPS``)."""
    mapping = c.mapping("tags", raw)
    if mapping is None:
        return None
    out: dict[str, str] = {}
    for key, value in mapping.items():
        prop = f"tags.{key}"
        key_s = c.name(prop, key, "tag")
        if key_s is None:
            continue
        if key_s in RESERVED_TAGS:
            c.fail(prop, "is set by the provider itself and cannot be declared")
            continue
        if key_s == RUN_NAME_TAG and has_run_name:
            c.fail(prop, f"conflicts with run_name; set run_name instead of the {RUN_NAME_TAG} tag")
            continue
        if key_s in declared:
            name = declared[key_s]
            c.fail(prop, f"conflicts with {name}; set {name} instead of the {key_s} tag")
            continue
        if not isinstance(value, str):
            c.fail(prop, f"must be a string, got {_kind(value)}")
            continue
        if _utf8_len(value) > MAX_TAG_VALUE_BYTES:
            c.fail(prop, f"value is {_utf8_len(value)} bytes; the limit is {MAX_TAG_VALUE_BYTES} bytes")
            continue
        out[key_s] = value
    return out


_PLAIN_POINT = frozenset({"key", "value", "step", "timestamp"})


def _whole(value: Any, low: int) -> int | None:
    if type(value) is int:
        return value if low <= value <= MAX_INT64 else None
    if type(value) is float and value.is_integer() and low <= value <= MAX_INT64:
        return int(value)
    return None


def _plain_point(item: Any, good_keys: set[str]) -> dict[str, Any] | None:
    """The usual point ({key, value, step?, timestamp?}, all valid) in normal form; None sends it down the
    full path, which names every problem. Check walks thousands of these on every preview."""
    if type(item) is not dict or not item.keys() <= _PLAIN_POINT:
        return None
    key = item.get("key")
    if type(key) is not str or key not in good_keys:  # a list or dict as the key is no key (and unhashable)
        return None
    value: Any = item.get("value")
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None
    elif kind is int:
        value = float(value)
    elif not (kind is str and value in NONFINITE):
        return None
    raw_step = item.get("step")
    step = 0 if raw_step is None else _whole(raw_step, -(2**63))
    if step is None:
        return None
    point = {"key": item["key"], "value": value, "step": step}
    if item.get("timestamp") is not None:
        timestamp = _whole(item["timestamp"], 0)
        if timestamp is None:
            return None
        point["timestamp"] = timestamp
    return point


def _metrics(c: _Checker, raw: Any) -> list[dict[str, Any]] | None:
    items = c.sequence("metrics", raw)
    if items is None:
        return None
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    good_keys: set[str] = set()  # a curve repeats its key: check each name once
    for i, item in enumerate(items):
        fast = _plain_point(item, good_keys)
        if fast is not None:
            ident: tuple[Any, ...] = (fast["key"], fast["value"], fast["step"], fast.get("timestamp"))
            if ident not in seen:
                seen[ident] = i
                out.append(fast)
                continue
        prop = f"metrics[{i}]"
        if not c.item_keys(prop, item, _METRIC_KEYS, ("key", "value")):
            continue
        before = len(c.failures)
        key = item["key"]
        if not (type(key) is str and key in good_keys):
            key = c.name(f"{prop}.key", key, "metric")
            if key is not None:
                good_keys.add(key)
        point: dict[str, Any] = {"key": key}
        value = normalize_metric_value(item["value"])
        if value is None:
            c.fail(f"{prop}.value", f"must be a number (or 'NaN', 'Infinity', '-Infinity'), got {_kind(item['value'])}")
        point["value"] = value
        step = item.get("step")
        point["step"] = 0 if step is None else c.integer(f"{prop}.step", step, minimum=-(2**63))
        if item.get("timestamp") is not None:
            point["timestamp"] = c.integer(f"{prop}.timestamp", item["timestamp"])
        for opt in ("dataset_name", "dataset_digest", "model_id"):
            if item.get(opt) is not None:
                point[opt] = c.string(f"{prop}.{opt}", item[opt])
        ident = tuple(point.get(k) for k in ("key", "value", "step", "timestamp"))
        if len(c.failures) == before and ident in seen:
            c.fail(
                prop,
                f"repeats metrics[{seen[ident]}] (same key, value, step and timestamp); MLflow keeps "
                "such a point once: give it another step or timestamp",
            )
        seen.setdefault(ident, i)
        if len(c.failures) == before:
            out.append(point)
    return out


def _dataset_inputs(c: _Checker, raw: Any) -> list[dict[str, Any]] | None:
    items = c.sequence("dataset_inputs", raw)
    if items is None:
        return None
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(items):
        prop = f"dataset_inputs[{i}]"
        if not c.item_keys(prop, item, {"dataset", "tags"}, ("dataset",)):
            continue
        before = len(c.failures)
        ds_raw = item["dataset"]
        if not c.item_keys(f"{prop}.dataset", ds_raw, _DATASET_KEYS, ("name", "digest", "source_type", "source")):
            continue
        dataset = {
            k: c.string(f"{prop}.dataset.{k}", ds_raw[k]) for k in sorted(_DATASET_KEYS) if ds_raw.get(k) is not None
        }
        tags: dict[str, str] = {}
        tag_map = c.mapping(f"{prop}.tags", item.get("tags") or {})
        for key, value in (tag_map or {}).items():
            key_s = c.string(f"{prop}.tags", key, allow_empty=False)
            value_s = c.string(f"{prop}.tags.{key}", value)
            if key_s is not None and value_s is not None:
                tags[key_s] = value_s
        ident = (str(dataset.get("name")), str(dataset.get("digest")))
        if ident in seen:
            c.fail(prop, f"has the name and digest of dataset_inputs[{seen[ident]}]: list a dataset once")
        seen.setdefault(ident, i)
        if len(c.failures) == before:
            out.append({"dataset": dataset, "tags": tags})
    return out


def _model_refs(c: _Checker, name: str, raw: Any, with_step: bool) -> list[dict[str, Any]] | None:
    items = c.sequence(name, raw)
    if items is None:
        return None
    out: list[dict[str, Any]] = []
    firsts: dict[str, int] = {}
    fields = ("model_id", "step") if with_step else ("model_id",)
    for i, item in enumerate(items):
        prop = f"{name}[{i}]"
        if not c.item_keys(prop, item, set(fields), fields):
            continue
        before = len(c.failures)
        ref: dict[str, Any] = {"model_id": c.string(f"{prop}.model_id", item["model_id"], allow_empty=False)}
        if with_step:
            ref["step"] = c.integer(f"{prop}.step", item["step"])
        first = firsts.setdefault(repr(ref), i)
        if first != i:
            c.fail(prop, f"is the same as {name}[{first}]: list a model once")
        if len(c.failures) == before:
            out.append(ref)
    return out


def _metrics_file_path(c: _Checker, value: Any) -> str | None:
    """The path of the file asset ``metrics_file`` names; None (with a failure) for any other kind of value, or
    for the engine's signature-only form, which Diff and Read are handed (its summary stands for it)."""
    if isinstance(value, Elided):
        return None
    if not isinstance(value, FileAsset):
        kind = "an archive" if isinstance(value, Archive) else type(value).__name__
        c.fail("metrics_file", f"must be a FileAsset (a file the training job wrote), got {kind}")
        return None
    return str(value.path)


def _read_metrics_file(c: _Checker, path: str, inline: Any) -> dict[str, Any] | None:
    """Check's reading of the file: its summary, or a failure naming the file, the line and the column."""
    points = [] if inline is None or is_unknown(inline) else (checked_points(inline) or [])
    try:
        return metrics_file.summarize(path, points).as_dict()
    except metrics_file.FileProblem as exc:
        c.fail("metrics_file", str(exc))
        return None


def summary_to_reuse(olds: Mapping[str, Any], news: Mapping[str, Any], *, engine_unchanged: bool) -> Any:
    """The metrics file's summary Check gave before, where it still holds and the file need not be read: the
    same file, unchanged (by the engine's hash where the door has it, else by its bytes), and the same inline
    points (the file's rows are checked against them)."""
    old = olds.get(METRICS_FILE_SUMMARY.name)
    path = getattr(news.get("metrics_file"), "path", None)
    if old is None or not isinstance(path, str) or canonical(olds.get("metrics")) != canonical(news.get("metrics")):
        return None
    if engine_unchanged:
        return old if metrics_file.same_file(old, path) else None
    return metrics_file.still_holds(old, path)


def checked_points(raw: Any) -> list[dict[str, Any]] | None:
    """``metrics`` in normal form, as ``check_inputs`` gives them; None if unknown or any point breaks a rule."""
    if raw is None:
        return []
    if is_unknown(raw):
        return None
    c = _Checker()
    points = _metrics(c, raw)
    return None if c.failures else (points or [])


def _normal(c: _Checker, key: str, value: Any, given: Mapping[str, Any]) -> Any:
    """One known input in normal form; None (with failures in ``c``) where it breaks a rule, or where it is kept
    as given (``artifacts``: the engine must still see the assets)."""
    if key in ("experiment_id", *CREATE_ONLY_KEYS):
        return c.string(key, value, allow_empty=False)
    if key in ("deployment_name", "host"):
        return c.connection(key, value)
    if key == "run_name" or key in TAG_PROPS:
        return c.string(key, value)
    if key in ("start_time", "end_time"):
        return c.integer(key, value)
    if key == "status":
        status = c.string(key, value)
        if status is not None and status not in STATUSES:
            c.fail(key, f"must be one of {', '.join(STATUSES)}")
            return None
        return status
    if key == "params":
        return _params(c, value)
    if key == "tags":
        return _tags(c, value, "run_name" in given, {TAG_PROPS[k]: k for k in given if k in TAG_PROPS})
    if key == "metrics":
        return _metrics(c, value)
    if key == "dataset_inputs":
        return _dataset_inputs(c, value)
    if key in ("model_inputs", "model_outputs"):
        return _model_refs(c, key, value, key == "model_outputs")
    if key == "artifacts":
        c.failures += check_artifacts(value)
    return None


def check_inputs(
    news: Mapping[str, Any],
    outputs: Collection[str] = OUTPUT_KEYS,
    *,
    read_files: bool = False,
    reuse_summary: Any = None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Validate and normalize the inputs; return ``(inputs, failures)``.

    ``inputs`` keeps every given key (normalized where known and valid, untouched where unknown or
    invalid), so the engine can still show it; ``failures`` name the property, the problem and the limit.
    ``outputs`` are the names of the door's outputs, which its program may send as None and are no inputs.

    ``read_files`` is Check's: the metrics file is read and checked row by row, and what it holds is added
    as ``metrics_file_summary`` (``reuse_summary`` instead, ``summary_to_reuse``'s); other callers get the
    inputs Check returned, summary included, and read no file.
    """
    c = _Checker()
    out: dict[str, Any] = {}
    known = {*INPUT_KEYS, *CREATE_ONLY_KEYS, *CHECKED_KEYS}
    for key in sorted(set(news) - known - set(outputs) - {"__provider"}):
        c.fail(key, f"is not an input of ExperimentRun (inputs: {', '.join(INPUT_KEYS)}, adopt_run_id)")
    given = {k: v for k, v in news.items() if k in (*INPUT_KEYS, *CREATE_ONLY_KEYS) and v is not None}
    if not read_files and news.get(METRICS_FILE_SUMMARY.name) is not None and "metrics_file" in given:
        out[METRICS_FILE_SUMMARY.name] = news[METRICS_FILE_SUMMARY.name]
    for key, value in given.items():
        out[key] = value
        if is_unknown(value):
            continue
        if key == "metrics_file":
            path = _metrics_file_path(c, value)  # kept as given: the engine hashes the asset
            if path is not None and read_files:
                summary = reuse_summary or _read_metrics_file(c, path, given.get("metrics"))
                if summary is not None:
                    out[METRICS_FILE_SUMMARY.name] = summary
            continue
        normal = _normal(c, key, value, given)
        if normal is not None:
            out[key] = normal
    if "experiment_id" not in given:
        c.fail("experiment_id", "is required")
    start, end = out.get("start_time"), out.get("end_time")
    if isinstance(start, int) and isinstance(end, int) and end < start:
        c.fail("end_time", f"({end}) is before start_time ({start})")
    c.one_server(given)
    return out, c.failures

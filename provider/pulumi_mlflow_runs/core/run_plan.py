"""Which requests make a change, and what state records afterwards: pure functions.

``plan_writes`` turns "from this state to these inputs" into the fewest requests the limits allow
(``run_diff`` has already said what changed); ``outputs_for`` is the run as every front door gets it back.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.change_rules import blank, canonical, match_points
from pulumi_mlflow_runs.core.run_origin import ORIGIN_TAGS, PROJECT_TAG
from pulumi_mlflow_runs.core.run_spec import (
    INPUT_KEYS,
    MAX_BATCH_VALUE_CHARS,
    NOT_ECHOED_KEYS,
    OUTPUT_KEYS,
    TAG_PROPS,
    TERMINAL_STATUSES,
)

# log-batch request limits (the seed page)
BATCH_MAX_ITEMS = 1000
BATCH_MAX_METRICS = 1000
BATCH_MAX_PARAMS = 100
BATCH_MAX_TAGS = 100
BATCH_MAX_BYTES = 1_000_000
"""1 MB, with the envelope and a margin kept out of it."""
_BATCH_ENVELOPE_BYTES = 200


# ---- request plan --------------------------------------------------------------------------------------


@dataclass
class Writes:
    """The requests that take a run from one state to another, in the order they are sent."""

    run_id: str
    restore: bool = False
    batches: list[m.LogBatch] = field(default_factory=list)
    long_params: list[m.LogParam] = field(default_factory=list)
    long_tags: list[m.SetTag] = field(default_factory=list)
    deleted_tags: list[m.DeleteTag] = field(default_factory=list)
    inputs: m.LogInputs | None = None
    outputs: m.LogOutputs | None = None
    update: m.UpdateRun | None = None


def assign_timestamps(points: Iterable[Mapping[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """Give every point without a timestamp ``now_ms``; the result is what state records."""
    return [dict(p) if p.get("timestamp") is not None else {**p, "timestamp": now_ms} for p in points]


def _item_size(item: m.Metric | m.Param | m.RunTag) -> int:
    return len(json.dumps(item.model_dump(mode="json", exclude_none=True), separators=(",", ":"))) + 1


def size_bound(item: m.Metric | m.Param | m.RunTag) -> int:
    """At least the item's JSON size, without serializing it: JSON spells a character in at most 12 bytes,
    and the rest of an item (field names, numbers) takes under 200."""
    if isinstance(item, m.Metric):
        text = [item.key, item.dataset_name or "", item.dataset_digest or "", item.model_id or ""]
    else:
        text = [item.key, item.value]
    return 12 * sum(map(len, text)) + 200


def chunk_log_batch(
    run_id: str, metrics: Sequence[m.Metric], params: Sequence[m.Param], tags: Sequence[m.RunTag]
) -> list[m.LogBatch]:
    """The fewest log-batch requests within every limit: per-kind counts, total items, bytes.

    Params and tags go first (a run's params are usually read before its curves), each request filled
    to its per-kind limit and topped up with metric points.
    """
    batches: list[m.LogBatch] = []
    queues: dict[str, deque[Any]] = {"params": deque(params), "tags": deque(tags), "metrics": deque(metrics)}
    caps = {"params": BATCH_MAX_PARAMS, "tags": BATCH_MAX_TAGS, "metrics": BATCH_MAX_METRICS}
    items: list[m.Metric | m.Param | m.RunTag] = [*params, *tags, *metrics]
    worst = max(map(size_bound, items), default=0)
    # Measuring each item is the slow part; skip it when even a full batch of the largest item fits.
    sized = _BATCH_ENVELOPE_BYTES + len(run_id) + worst * BATCH_MAX_ITEMS > BATCH_MAX_BYTES
    while any(queues.values()):
        taken: dict[str, list[Any]] = {"params": [], "tags": [], "metrics": []}
        size, count = _BATCH_ENVELOPE_BYTES + len(run_id), 0
        for kind in ("params", "tags", "metrics"):
            queue = queues[kind]
            while queue and len(taken[kind]) < caps[kind] and count < BATCH_MAX_ITEMS:
                item_size = _item_size(queue[0]) if sized else 0
                if size + item_size > BATCH_MAX_BYTES and count:
                    break
                taken[kind].append(queue.popleft())
                size += item_size
                count += 1
        batches.append(
            m.LogBatch(
                run_id=run_id,
                metrics=taken["metrics"] or None,
                params=taken["params"] or None,
                tags=taken["tags"] or None,
            )
        )
    return batches


def metric_model(point: Mapping[str, Any]) -> m.Metric:
    """Points have passed ``check_inputs``: build the model without validating each field again."""
    fields = {k: v for k, v in point.items() if v is not None}
    fields["value"] = m.decode_float(fields["value"])
    return m.Metric.model_construct(**fields)


def _dataset_input(item: Mapping[str, Any]) -> m.DatasetInput:
    return m.DatasetInput(
        dataset=m.Dataset.model_validate(item["dataset"]),
        tags=[m.InputTag(key=k, value=v) for k, v in (item.get("tags") or {}).items()],
    )


def _appended(old: Any, new: Any) -> list[Any]:
    """Declared items the run does not have yet, wherever they stand (``diff_run`` ruled out removals)."""
    have = {canonical(x) for x in old or []}
    return [x for x in new or [] if canonical(x) not in have]


def plan_writes(run_id: str, old: Mapping[str, Any], new: Mapping[str, Any], now_ms: int) -> Writes:
    """The requests from ``old`` (outputs in state, ``{}`` for a new run) to ``new`` (checked inputs
    whose metric points already carry timestamps). Called only for changes ``diff_run`` calls updates.

    A run that becomes FINISHED, FAILED or KILLED without a declared ``end_time`` ends ``now_ms``, as
    MLflow's own client does; otherwise the server would keep it without an end.
    """
    w = Writes(run_id, restore=old.get("lifecycle_stage") == "deleted")
    old_params, new_params = dict(old.get("params") or {}), dict(new.get("params") or {})
    params = {k: v for k, v in new_params.items() if k not in old_params}
    old_tags, new_tags = _with_tag_props(old), _with_tag_props(new)
    tags = {k: v for k, v in new_tags.items() if old_tags.get(k) != v}
    w.deleted_tags = [m.DeleteTag(run_id=run_id, key=k) for k in old_tags if k not in new_tags]

    batch_params = [m.Param(key=k, value=v) for k, v in params.items() if len(v) <= MAX_BATCH_VALUE_CHARS]
    w.long_params = [
        m.LogParam(run_id=run_id, key=k, value=v) for k, v in params.items() if len(v) > MAX_BATCH_VALUE_CHARS
    ]
    batch_tags = [m.RunTag(key=k, value=v) for k, v in tags.items() if len(v) <= MAX_BATCH_VALUE_CHARS]
    w.long_tags = [m.SetTag(run_id=run_id, key=k, value=v) for k, v in tags.items() if len(v) > MAX_BATCH_VALUE_CHARS]
    paired, _ = match_points(list(old.get("metrics") or []), list(new.get("metrics") or []))
    metrics = [metric_model(p) for p, was in zip(new.get("metrics") or [], paired, strict=True) if was is None]
    w.batches = chunk_log_batch(run_id, metrics, batch_params, batch_tags)

    datasets = [_dataset_input(d) for d in _appended(old.get("dataset_inputs"), new.get("dataset_inputs"))]
    models = [m.ModelInput(model_id=x["model_id"]) for x in _appended(old.get("model_inputs"), new.get("model_inputs"))]
    if datasets or models:
        w.inputs = m.LogInputs(run_id=run_id, datasets=datasets or None, models=models or None)
    outputs = [
        m.ModelOutput(model_id=x["model_id"], step=x["step"])
        for x in _appended(old.get("model_outputs"), new.get("model_outputs"))
    ]
    if outputs:
        w.outputs = m.LogOutputs(run_id=run_id, models=outputs)

    changed = {
        k: new.get(k) for k in ("run_name", "status", "end_time") if new.get(k) is not None and new.get(k) != old.get(k)
    }
    if changed.get("status") in TERMINAL_STATUSES and new.get("end_time") is None:
        changed["end_time"] = now_ms
    if changed:
        w.update = m.UpdateRun(run_id=run_id, **changed)
    return w


# ---- outputs -------------------------------------------------------------------------------------------


def run_view(run: m.Run, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The GetRun view that the ``run`` output shows (non-finite values as MLflow's strings), less the
    params, tags, dataset and model inputs and model outputs that the program declares: the outputs of the
    same name hold those, and ``run`` would otherwise store each of them a second time."""
    view = run.model_dump(mode="json", exclude_none=True, by_alias=True)
    if view.get("data", {}).get("metrics"):  # the server's order is its storage's: state keeps one
        view["data"]["metrics"].sort(key=lambda point: point["key"])
    tags = set(_with_tag_props(inputs))
    _drop(view.get("data"), "params", lambda p: p.get("key") in (inputs.get("params") or ()))
    _drop(view.get("data"), "tags", lambda t: t.get("key") in tags)
    datasets = {canonical(_dataset_item(d)) for d in inputs.get("dataset_inputs") or ()}
    _drop(view.get("inputs"), "dataset_inputs", lambda d: canonical(_dataset_item(d)) in datasets)
    for section, name in (("inputs", "model_inputs"), ("outputs", "model_outputs")):
        declared = {canonical(x) for x in inputs.get(name) or ()}
        _drop(view.get(section), name, lambda x, declared=declared: canonical(x) in declared)
    return view


def _with_tag_props(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run tags ``values`` declare: ``tags``, and each tag-backed input given (``TAG_PROPS``) as its tag."""
    tags = dict(values.get("tags") or {})
    tags.update({tag: values[name] for name, tag in TAG_PROPS.items() if values.get(name) is not None})
    return tags


def _drop(section: dict[str, Any] | None, name: str, declared: Any) -> None:
    if section is not None and name in section:
        section[name] = [item for item in section[name] if not declared(item)]
        if not section[name]:
            del section[name]


def _dataset_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset input as declared (``tags`` a dict) whether it comes from the program or the GetRun view."""
    tags = item.get("tags") or {}
    if isinstance(tags, list):
        tags = {t["key"]: t["value"] for t in tags}
    dataset = {k: v for k, v in (item.get("dataset") or {}).items() if v is not None}
    return {"dataset": dataset, "tags": dict(tags)}


def latest_metrics(run: m.Run) -> dict[str, Any]:
    return {metric.key: m.encode_float(metric.value) for metric in run.data.metrics}


def outputs_for(
    inputs: Mapping[str, Any], run: m.Run, artifact_files: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The run as the core hands it to a front door: its normalized inputs (every input key, None where
    absent, but ``artifacts``), ``metrics`` holding every point as logged (each with the timestamp it was
    logged with), the server's view, and the stored artifact files (``artifact_files``). Each door writes
    this in its own state form (the dynamic door's columns, ``core.state.with_columns``; the plugin's stamps,
    ``native.state.plugin_state``)."""
    outs: dict[str, Any] = {key: inputs.get(key) for key in INPUT_KEYS if key not in NOT_ECHOED_KEYS}
    outs["artifact_files"] = dict(artifact_files) if artifact_files is not None else None
    outs["metrics_file_logged"] = inputs.get("metrics_file_logged")
    outs.update(
        run_id=run.info.run_id,
        artifact_uri=run.info.artifact_uri,
        lifecycle_stage=run.info.lifecycle_stage,
        user_id=run.info.user_id,
        run=run_view(run, inputs),
        latest_metrics=latest_metrics(run),
    )
    outs["run"] = _own_view(outs["run"], outs)
    return outs


_INFO_OUTPUTS = ("run_id", "experiment_id", "artifact_uri", "lifecycle_stage", "user_id", "run_name", "status")


def _own_view(view: dict[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """``run`` less what another output holds (``info.run_id`` is ``run_id``; ``run_uuid`` is ``run_id``
    again; ``mlflow.runName`` is ``run_name``) and the provider's own bookkeeping tags (``pulumi.*``, among
    them the metrics file's progress, which ``metrics_file_logged`` holds; on a run this provider made, the
    ``mlflow.*`` tags that name its origin, ``core.run_origin``): the state keeps each thing once."""
    info = {
        k: v
        for k, v in (view.get("info") or {}).items()
        if k != "run_uuid" and not (k in _INFO_OUTPUTS and outputs.get(k) is not None)
    }
    data = dict(view.get("data") or {})
    keys = [str(t.get("key", "")) for t in data.get("tags") or ()]
    origin = ORIGIN_TAGS if PROJECT_TAG in keys else ()
    tags = [
        t
        for t, key in zip(data.get("tags") or (), keys, strict=True)
        if not key.startswith(("pulumi.", "mlflow.runName")) and key not in origin
    ]
    data = {k: v for k, v in {**data, "tags": tags}.items() if v}
    own = {"info": info, "data": data, "inputs": view.get("inputs"), "outputs": view.get("outputs")}
    return {k: v for k, v in own.items() if v}


def unread_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """``outputs_for``'s form of a run a step left part-made: ``run`` None marks it, and the next update
    reads the server first (``metrics`` holds the points known to be logged, None where none is known)."""
    keys = (*(k for k in INPUT_KEYS if k not in NOT_ECHOED_KEYS), *OUTPUT_KEYS)
    outs: dict[str, Any] = {key: state.get(key) for key in keys}
    outs["run"] = None
    return outs


def stored_mismatches(inputs: Mapping[str, Any], run: m.Run) -> list[tuple[str, str]]:
    """Declared params and tags the server did not keep as sent (some servers cut long values)."""
    found: list[tuple[str, str]] = []
    server = {"params": {p.key: p.value for p in run.data.params}, "tags": {t.key: t.value for t in run.data.tags}}
    declared = {"params": dict(inputs.get("params") or {}), "tags": _with_tag_props(inputs)}
    prop_of_tag = {tag: name for name, tag in TAG_PROPS.items()}
    for kind in ("params", "tags"):
        for key, value in declared[kind].items():
            kept = server[kind].get(key)
            if kept != value:
                prop = prop_of_tag[key] if kind == "tags" and key in prop_of_tag else f"{kind}.{key}"
                if kept is not None and value.startswith(kept):
                    found.append(
                        (
                            prop,
                            f"the server kept only {len(kept)} of {len(value)} characters; "
                            f"its limit is {len(kept)} characters",
                        )
                    )
                else:
                    found.append((prop, "the server did not store the declared value"))
    return found


def history_points(history: Mapping[str, Sequence[m.Metric]]) -> list[dict[str, Any]]:
    """Logged points (``get_metric_history``) as the state's points, by key, then step and time."""
    return [
        {k: v for k, v in p.model_dump(mode="json", exclude={"run_id"}).items() if v is not None}
        for key in sorted(history)
        for p in sorted(history[key], key=lambda p: (p.step, p.timestamp))
    ]


def logged_point_id(point: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells two logged points apart on the server: key, step, timestamp and value (NaN equal to NaN)."""
    return (point.get("key"), point.get("step") or 0, point.get("timestamp"), repr(float(point["value"])))


def unrecorded_on_server(points: Sequence[Mapping[str, Any]], keys: set[str], run: m.Run) -> bool:
    """Whether the run's latest point of one of ``keys`` (``runs/get``) is not among ``points``."""
    recorded = {logged_point_id(p) for p in points}
    return any(logged_point_id(x.model_dump()) not in recorded for x in run.data.metrics if x.key in keys)


def adopted_inputs(run: m.Run, history: Mapping[str, Sequence[m.Metric]]) -> dict[str, Any]:
    """Inputs that describe an existing run, for ``import_`` and ``ExperimentRun.get``.

    Tags the server or MLflow's clients set (``mlflow.*``, the provider's own) are not adopted, and
    neither are start and end time: a program that leaves them out matches the run as it is.
    """
    tags = {t.key: t.value for t in run.data.tags}
    points = history_points(history)
    adopted: dict[str, Any] = {
        "experiment_id": run.info.experiment_id,
        "run_name": run.info.run_name or None,
        "status": run.info.status,
        "params": {p.key: p.value for p in run.data.params},
        "tags": {
            k: v for k, v in tags.items() if not k.startswith(_SYSTEM_TAG_PREFIXES) and k not in TAG_PROPS.values()
        },
        **{name: tags.get(tag) for name, tag in TAG_PROPS.items()},
        "metrics": points,
        "dataset_inputs": [
            {
                "dataset": d.dataset.model_dump(mode="json", exclude_none=True, by_alias=True),
                "tags": {t.key: t.value for t in d.tags},
            }
            for d in run.inputs.dataset_inputs
        ],
        "model_inputs": [{"model_id": x.model_id} for x in run.inputs.model_inputs],
        "model_outputs": [{"model_id": x.model_id, "step": x.step} for x in run.outputs.model_outputs],
    }
    return {k: v for k, v in adopted.items() if not blank(v)}


_SYSTEM_TAG_PREFIXES = ("mlflow.", "pulumi.")


def adopted_state(run: m.Run, history: Mapping[str, Sequence[m.Metric]], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """An existing run as the state it would have if this program had made it, for a create that takes it over.

    Only what the program manages counts: tags it does not declare (a colleague's) are left alone, and
    so is a description it does not declare. Start and end time are the run's own, so that a declared
    start time that differs is a replace (MLflow cannot change it).
    """
    adopted = adopted_inputs(run, history)
    declared_tags = inputs.get("tags") or {}
    adopted["tags"] = {k: v for k, v in (adopted.get("tags") or {}).items() if k in declared_tags}
    for name in TAG_PROPS:
        if inputs.get(name) is None:
            adopted.pop(name, None)
    adopted.update(start_time=run.info.start_time, end_time=run.info.end_time)
    return outputs_for(adopted, run)


def refreshed_outputs(state: Mapping[str, Any], run: m.Run) -> dict[str, Any]:
    """Outputs after a refresh: managed values as the server now has them, so drift shows in a diff.
    ``state`` is ``outputs_for``'s form, as the front door read it back from its state.

    Tags the program never declared are not adopted; metric points and inputs stay as logged (MLflow
    never changes or removes them short of deleting the run).
    """
    outs = dict(state)
    server_tags = {t.key: t.value for t in run.data.tags}
    server_params = {p.key: p.value for p in run.data.params}
    if state.get("tags") is not None:
        outs["tags"] = {k: server_tags[k] for k in state["tags"] if k in server_tags}
    if state.get("params") is not None:
        outs["params"] = {k: server_params[k] for k in state["params"] if k in server_params}
    for name, tag in TAG_PROPS.items():
        if state.get(name) is not None:
            outs[name] = server_tags.get(tag)
    for key in ("run_name", "status", "end_time"):
        if state.get(key) is not None:
            outs[key] = getattr(run.info, key)
    outs["experiment_id"] = run.info.experiment_id
    return outputs_for(outs, run, state.get("artifact_files"))  # files as Read found them (``refreshed_files``)

"""Carrying out a request plan on the server, each write exactly once."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.errors import EndpointNotFound, InputError, NotFound
from pulumi_mlflow_runs.core.exactly_once import send_exactly_once
from pulumi_mlflow_runs.core.resource_key import UNFINISHED, key_of, mark_of
from pulumi_mlflow_runs.core.run_plan import BATCH_MAX_TAGS, Writes
from pulumi_mlflow_runs.core.run_spec import RESERVED_TAGS, RESOURCE_KEY_TAG

CREATION_TOKEN_TAG = RESERVED_TAGS[0]
"""Set on every run at creation, so a create whose answer was lost can find the run it made."""

_LOG_INPUTS_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _log_inputs_lock(api: MlflowApi) -> threading.Lock:
    """One log-inputs at a time per server from this host.

    MLflow's SQL store checks whether a dataset exists and then inserts it; two runs logging the same
    dataset at once make one of them fail with a 400 (UNIQUE constraint). The engine runs resources in
    parallel in one provider host, so serializing this one call here removes the race.
    """
    with _LOCKS_LOCK:
        return _LOG_INPUTS_LOCKS.setdefault(api.transport.connection.base_url, threading.Lock())


def create_run(api: MlflowApi, req: m.CreateRun) -> m.Run:
    """``runs/create`` once: after an uncertain outcome, look for the run by its creation token."""
    token = uuid.uuid4().hex
    req = req.model_copy(update={"tags": [*(req.tags or []), m.RunTag(key=CREATION_TOKEN_TAG, value=token)]})
    made: list[m.Run] = []

    def remaining(r: m.CreateRun) -> m.CreateRun | None:
        search = m.SearchRuns(
            experiment_ids=[r.experiment_id],
            filter=f"tags.\"{CREATION_TOKEN_TAG}\" = '{token}'",
            run_view_type="ALL",
            max_results=1,
        )
        made.extend(api.search_runs(search))
        return None if made else r

    send_exactly_once(api.transport, req, lambda r: made.append(api.create_run(r)), remaining)
    return made[-1]


def unfinished_tag(resource_key: str | None) -> list[m.RunTag] | None:
    """The tag a run is created with: it says the create has not written everything yet. ``resource_key`` is
    the input (``core.resource_key.as_input``): the run is marked with its key, never with a legacy one."""
    key = key_of(resource_key)
    return None if key is None else [m.RunTag(key=RESOURCE_KEY_TAG, value=UNFINISHED + key)]


def completion_tag(w: Writes, resource_key: str | None) -> None:
    """Mark the run finished in the create's last request (the last log-batch), not in one more request."""
    _complete(w, key_of(resource_key))


def _complete(w: Writes, key: str | None) -> None:
    if key is None:
        return
    tag = m.RunTag(key=RESOURCE_KEY_TAG, value=key)
    if w.batches and len(w.batches[-1].tags or []) < BATCH_MAX_TAGS:
        last = w.batches[-1]
        w.batches[-1] = last.model_copy(update={"tags": [*(last.tags or []), tag]})
    else:
        w.batches.append(m.LogBatch(run_id=w.run_id, tags=[tag]))


def _unfinished_key(run: m.Run) -> str | None:
    mark = mark_of(run)
    return mark.removeprefix(UNFINISHED) if mark.startswith(UNFINISHED) else None


def is_unfinished(run: m.Run) -> bool:
    """Whether ``run`` still carries the mark of a create that has not written everything."""
    return _unfinished_key(run) is not None


def finish_unfinished(w: Writes, run: m.Run) -> None:
    """A run a failed create left still marked unfinished: the update that completes it drops the mark
    (in its last request), so no later create takes it for one of its own."""
    _complete(w, _unfinished_key(run))


_UNFINISHED_BY_EXPERIMENT: dict[tuple[str, str], dict[str, list[m.Run]]] = {}
_UNFINISHED_LOCK = threading.Lock()
_SEARCH_LOCKS: dict[tuple[str, ...], threading.Lock] = {}


def find_unfinished(api: MlflowApi, experiment_id: str, keys: Sequence[str]) -> list[m.Run]:
    """Active runs this resource began to create and never finished (an ``up`` killed mid-create), marked
    with any of its ``keys`` (``core.resource_key``: its key, then the keys earlier versions gave it), in
    that order.

    One search per experiment per provider host (one host serves a whole ``pulumi up``), not one per
    create: the runs left unfinished by an earlier ``up`` are all there when it starts, and the creates
    of this one are not unfinished but under way. That one search (every ``creating:`` mark) covers the
    legacy keys too, with no request more than before. A run handed out here is not handed out again.
    """
    if not keys:
        return []
    where = (api.transport.connection.base_url, experiment_id)
    with _UNFINISHED_LOCK:
        search_lock = _SEARCH_LOCKS.setdefault(where, threading.Lock())
    with search_lock:
        if where not in _UNFINISHED_BY_EXPERIMENT:
            search = m.SearchRuns(
                experiment_ids=[experiment_id],
                filter=f"tags.\"{RESOURCE_KEY_TAG}\" LIKE '{UNFINISHED}%'",
                run_view_type="ACTIVE_ONLY",
            )
            found: dict[str, list[m.Run]] = {}
            for run in api.search_runs(search):
                found.setdefault(mark_of(run).removeprefix(UNFINISHED), []).append(run)
            _UNFINISHED_BY_EXPERIMENT[where] = found
        found = _UNFINISHED_BY_EXPERIMENT[where]
        return [run for key in dict.fromkeys(keys) for run in found.pop(key, [])]


_COMPLETE_BY_EXPERIMENT: dict[tuple[str, str], dict[str, list[m.Run]] | None] = {}
FEW_RUNS = 100
"""An experiment with at most this many runs of resources is searched once per provider host for the runs
``find_complete`` looks for; one with more, once per create."""


def find_complete(api: MlflowApi, experiment_id: str, key: str, state_runs: Collection[str]) -> list[m.Run]:
    """Active runs marked complete with ``key`` that the stack's state does not hold (``state_runs``): made
    whole by a create whose ``up`` died before the engine recorded it.

    Nothing tells such a run from a recorded one but the state, so every run of a resource is a candidate. Where
    an experiment holds few (``FEW_RUNS``), one search per provider host finds them all: a run left so is there
    when the ``up`` starts, and the runs this ``up`` makes are recorded by it. Otherwise, one search per create.
    """
    where = (api.transport.connection.base_url, experiment_id)
    with _UNFINISHED_LOCK:
        search_lock = _SEARCH_LOCKS.setdefault(("complete", *where), threading.Lock())
    with search_lock:
        if where not in _COMPLETE_BY_EXPERIMENT:
            page = api.search_runs_page(
                m.SearchRuns(
                    experiment_ids=[experiment_id],
                    filter=f"tags.\"{RESOURCE_KEY_TAG}\" LIKE '%'",
                    run_view_type="ACTIVE_ONLY",
                    max_results=FEW_RUNS,
                )
            )
            few: dict[str, list[m.Run]] | None = None
            if not page.next_page_token:
                few = {}
                for run in page.runs:
                    few.setdefault(mark_of(run), []).append(run)
            _COMPLETE_BY_EXPERIMENT[where] = few
        few = _COMPLETE_BY_EXPERIMENT[where]
    if few is not None:
        runs: Iterable[m.Run] = few.get(key, ())
    else:
        search = m.SearchRuns(
            experiment_ids=[experiment_id],
            filter=f"tags.\"{RESOURCE_KEY_TAG}\" = '{key}'",
            run_view_type="ACTIVE_ONLY",
        )
        runs = api.search_runs(search)
    return [run for run in runs if run.info.run_id not in state_runs]


def forget_searches() -> None:
    """What a new provider process starts with: no search of an earlier ``up`` remembered (for tests)."""
    with _UNFINISHED_LOCK:
        _UNFINISHED_BY_EXPERIMENT.clear()
        _COMPLETE_BY_EXPERIMENT.clear()


def _mlflow3_only(w: Writes) -> tuple[str, str] | None:
    """``(property, what)`` of the first input in ``w`` that only MLflow 3 servers keep, or None.

    A 2.x server lacks runs/outputs (404), refuses model inputs alone (400 "Missing value for required
    parameter 'datasets'") and silently drops them beside datasets, and silently drops a metric point's
    model and dataset fields: so these are checked against the server's version before anything is sent.
    """
    if w.outputs:
        return "model_outputs", "model outputs"
    if w.inputs and w.inputs.models:
        return "model_inputs", "model inputs"
    for batch in w.batches:
        for point in batch.metrics or []:
            for field in ("model_id", "dataset_name", "dataset_digest"):
                if getattr(point, field) is not None:
                    return "metrics", f"a metric point's {field}"
    return None


def needs_mlflow3(api: MlflowApi, prop: str, what: str, *, endpoint_missing: bool = False) -> InputError | None:
    """The error for ``prop`` if the server is older than MLflow 3.0 (or, when it names no version and
    lacks the endpoint, is taken to be), else None."""
    version = api.server_version()
    if version is not None and int(version.split(".")[0]) >= 3:
        return None
    if version is None and not endpoint_missing:
        return None  # names no version and has not refused: send it
    server = api.transport.connection.base_url
    seen = f"MLflow {version}" if version else "older than 3.0 (it has no runs/outputs endpoint)"
    return InputError(
        prop,
        f"needs an MLflow server of version 3.0 or newer for {what}; the server at {server} is {seen}. "
        f"Upgrade the server, or leave `{prop}` out of the program for it",
    )


def _point_id(point: m.Metric) -> tuple[Any, ...]:
    return (point.key, point.step, point.timestamp, m.encode_float(point.value))


def apply_writes(
    api: MlflowApi,
    w: Writes,
    done: list[str] | None = None,
    *,
    send_last: Callable[[m.LogBatch | None], None] | None = None,
) -> None:
    """Send the plan in order; metric points and model outputs never twice.

    Log-batch goes last: if an earlier step fails for good, no metric point has been logged yet, so the
    next ``up`` cannot log one twice (points declared without a timestamp get a new one each attempt).

    ``done`` collects a description of each step as it completes, so a failure can say what was applied.
    ``send_last`` is handed the plan's last log-batch (None if it has none) to send itself, with more of its own.
    """
    done = [] if done is None else done
    mlflow3_only = _mlflow3_only(w)
    if mlflow3_only is not None:
        too_old = needs_mlflow3(api, *mlflow3_only)
        if too_old is not None:
            raise too_old
    if w.restore:
        api.restore_run(w.run_id)
        done.append("restored the run")
    for param in w.long_params:
        api.log_param(param)
        done.append(f"logged param {param.key!r}")
    for tag in w.long_tags:
        api.set_tag(tag)
        done.append(f"set tag {tag.key!r}")
    for gone in w.deleted_tags:
        with contextlib.suppress(NotFound):  # already gone: the goal is reached
            api.delete_tag(gone)
        done.append(f"deleted tag {gone.key!r}")
    if w.inputs:
        with _log_inputs_lock(api):
            api.log_inputs(w.inputs)  # the server keeps one of each dataset and model input
        done.append(f"logged {len(w.inputs.datasets or []) + len(w.inputs.models or [])} input(s)")
    if w.outputs:
        try:
            send_exactly_once(api.transport, w.outputs, api.log_outputs, lambda o: _unrecorded(api, o))
        except EndpointNotFound as exc:
            too_old = needs_mlflow3(api, "model_outputs", "model outputs", endpoint_missing=True)
            raise too_old or exc from exc
        done.append(f"logged {len(w.outputs.models)} model output(s)")
    if w.update:
        api.update_run(w.update)
        changed = [k for k in ("run_name", "status", "end_time") if getattr(w.update, k) is not None]
        done.append("updated " + ", ".join(changed))
    batches = list(w.batches)
    last = batches.pop() if send_last is not None and batches else None
    for batch in batches:
        send_batch(api, batch)
        done.append(
            f"logged {len(batch.params or [])} param(s), {len(batch.tags or [])} tag(s), "
            f"{len(batch.metrics or [])} metric point(s)"
        )
    if send_last is not None:
        send_last(last)


def send_batch(api: MlflowApi, batch: m.LogBatch) -> None:
    """One log-batch, its points never twice."""
    send_exactly_once(api.transport, batch, api.log_batch, lambda b: unlogged(api, b))


def unlogged(api: MlflowApi, batch: m.LogBatch) -> m.LogBatch | None:
    """What of ``batch`` the server does not hold yet (params and tags are safe to send again)."""
    metrics = batch.metrics or []
    if metrics:
        logged: set[tuple[Any, ...]] = set()
        for key in {p.key for p in metrics}:
            logged.update(_point_id(p) for p in api.get_metric_history(batch.run_id, key))
        metrics = [p for p in metrics if _point_id(p) not in logged]
    rest = batch.model_copy(update={"metrics": metrics or None})
    return rest if (rest.metrics or rest.params or rest.tags) else None


def _unrecorded(api: MlflowApi, req: m.LogOutputs) -> m.LogOutputs | None:
    have: Mapping[tuple[str, int], bool] = {
        (o.model_id, o.step): True for o in api.get_run(req.run_id).outputs.model_outputs
    }
    missing = [o for o in req.models if (o.model_id, o.step) not in have]
    return req.model_copy(update={"models": missing}) if missing else None

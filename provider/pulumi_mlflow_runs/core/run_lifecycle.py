"""An ``ExperimentRun`` against a server, for every front door: create, read (import and refresh), update, delete.

The rules are ``run_spec`` (Check), ``run_diff`` (what a change means) and ``run_plan`` (the requests it
needs); this module sends them, with the guarantees that hold whichever door asked: a create that fails
leaves no run behind, an interrupted create is finished by the next one instead of orphaned, an existing
run is taken over only where it can be brought to the program without a replace, and a value the server
silently cut fails the step. Inputs are plain dicts in ``run_spec``'s normal form with their assets whole;
old state and what comes back are ``run_plan.outputs_for``'s form (``metrics`` every point as logged). Each
front door keeps that in a state form of its own and wraps it in its host's types.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core import file_points, state_seen
from pulumi_mlflow_runs.core.change_rules import match_points
from pulumi_mlflow_runs.core.errors import InputError, MlflowRunsError, NotFound
from pulumi_mlflow_runs.core.metrics_file import LOGGED
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_spec import INPUT_KEYS, OUTPUT_KEYS, TAG_PROPS, check_inputs

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.run_origin import RunOrigin


def checked_inputs(props: Mapping[str, Any], outputs: Collection[str] = OUTPUT_KEYS) -> dict[str, Any]:
    """Inputs as the engine hands them to create/update (numbers as floats) back in normal form, or the
    first failure raised as an ``InputError`` (``outputs``: as for ``check_inputs``)."""
    inputs, failures = check_inputs(props, outputs)
    if failures:
        prop, reason = failures[0]
        raise InputError(prop, reason)
    return inputs


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ---- create -------------------------------------------------------------------------------------------------


def create(
    api: MlflowApi,
    inputs: dict[str, Any],
    now: int,
    *,
    state_runs: Collection[str] | None = None,
    origin: RunOrigin | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(run id, outputs)`` of a new run made to match ``inputs``, or of the run it takes over.

    ``state_runs``: the runs the engine's state holds for this resource (``core.state_seen``), None where the
    front door cannot tell; only when it can is a complete run of this resource that no state holds taken back.
    ``origin``: the resource making the run, which a new run names where MLflow's UI shows it (``run_origin``).
    """
    from pulumi_mlflow_runs.core.artifacts.sync import sync
    from pulumi_mlflow_runs.core.created_run import LatestPoints, created_run, needs_read
    from pulumi_mlflow_runs.core.run_apply import apply_writes, completion_tag, send_batch
    from pulumi_mlflow_runs.core.run_plan import assign_timestamps, outputs_for, plan_writes, unread_state

    taken = _take_over(api, inputs, now, state_runs)
    if taken is not None:
        return taken["run_id"], taken
    inputs["metrics"] = assign_timestamps(inputs.get("metrics") or [], now)
    run = _create_run(api, inputs, now, origin)
    run_id = run.info.run_id
    complete: bool | None = False
    try:
        writes = plan_writes(run_id, {}, inputs, now)
        completion_tag(writes, inputs.get("resource_key"))
        latest = LatestPoints()
        for batch in writes.batches:
            latest.note_models(batch.metrics or ())
        # Files and the metrics file's rows before the completion tag: a run marked complete has all of them.
        files = sync(api, run.info.artifact_uri, None, inputs.get("artifacts"))
        path = file_points.declared_path(inputs)
        inputs[LOGGED] = None

        def send_last(last: m.LogBatch | None) -> None:
            """The metrics file's rows, then the plan's last log-batch (with the completion mark), in the rows'
            last request where it fits."""
            nonlocal complete
            complete = None  # from here on the run may be complete: its last request carries the mark
            if path is not None:
                inputs[LOGGED] = file_points.send(
                    api, run_id, path, None, now=now, run=None, done=[], tail=last, latest=latest
                )
            elif last is not None:
                send_batch(api, last)

        apply_writes(api, writes, send_last=send_last)
        complete = True
        if needs_read(api.transport.connection.databricks, writes, latest):
            run = api.get_run(run_id)
            _raise_if_not_stored(inputs, run)
        else:
            run = created_run(run, writes, latest)
    except BaseException as exc:
        if not _rollback(api, run_id, exc, complete=complete) and isinstance(exc, MlflowRunsError):
            # What of the points reached the server is not known: none is recorded as logged.
            made = {**inputs, "metrics": None, LOGGED: None, "run_id": run_id, "artifact_uri": run.info.artifact_uri}
            exc.left_behind = unread_state(made)
        raise
    return run_id, outputs_for(inputs, run, files)


def _take_over(
    api: MlflowApi, inputs: dict[str, Any], now: int, state_runs: Collection[str] | None
) -> dict[str, Any] | None:
    """Outputs of an existing run made to match the program, or None to create a new one.

    ``adopt_run_id`` names a run the program takes over. Otherwise a run this resource began to
    create in an ``up`` that was killed (still marked ``creating:<key>``, with its key or one an earlier
    version gave it: ``core.resource_key``) is finished instead of left behind; one that no longer fits the
    program is deleted, as a failed create would have been. Then a run this resource made whole in an ``up``
    that died before the engine recorded it (marked ``<key>``, held by no state: ``state_runs``) is taken
    back if it is exactly what the program declares; another one is left alone (a run ``retainOnDelete``
    kept, say, is the user's).
    """
    from pulumi_mlflow_runs.core.resource_key import key_of, keys_of
    from pulumi_mlflow_runs.core.run_apply import find_complete, find_unfinished

    wanted = inputs.get("adopt_run_id")
    if wanted is not None:
        return _adopt(api, wanted, inputs, now)
    for run in find_unfinished(api, inputs["experiment_id"], keys_of(inputs.get("resource_key"))):
        outputs, _ = converge(api, run, inputs, now)
        if outputs is not None:
            return outputs
        api.delete_run(run.info.run_id)
    key = key_of(inputs.get("resource_key"))
    if state_runs is None or key is None:
        return None
    for run in find_complete(api, inputs["experiment_id"], key, state_runs):
        outputs, _ = converge(api, run, inputs, now, exactly=True)
        if outputs is not None:
            state_seen.taken_back(run.info.run_id)
            return outputs
    return None


def _adopt(api: MlflowApi, wanted: str, inputs: dict[str, Any], now: int) -> dict[str, Any]:
    try:
        run = api.get_run(wanted)
    except NotFound:
        raise InputError("adopt_run_id", f"no run {wanted} on {api.transport.connection.base_url}") from None
    if run.info.experiment_id != inputs["experiment_id"]:
        raise InputError(
            "adopt_run_id",
            f"run {wanted} is in experiment {run.info.experiment_id}, not in experiment_id {inputs['experiment_id']}",
        )
    outputs, replaces = converge(api, run, inputs, now)
    if outputs is None:
        raise InputError(
            "adopt_run_id",
            f"run {wanted} differs from the program in {', '.join(replaces)}, which MLflow cannot change "
            "in place; declare what the run has (params and logged points are write-once), or drop "
            "adopt_run_id to create a new run",
        )
    return outputs


def converge(
    api: MlflowApi, run: m.Run, inputs: dict[str, Any], now: int, *, exactly: bool = False
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """Bring an existing run to the inputs: ``(outputs, ())``, or ``(None, changing keys)`` if it cannot
    (a replace), or, ``exactly``, if it would need any change but to its files (which are synced). Also for a
    table, whose one search finds the runs a failed or killed ``up`` of it made (``core.run_table``)."""
    from pulumi_mlflow_runs.core.run_plan import adopted_state

    run_id = run.info.run_id
    olds = file_points.on_server(adopted_state(run, histories(api, run), inputs), run, inputs)
    d = diff_run(olds, inputs)
    if d.replaces:
        return None, d.replaces
    if exactly and (changing := tuple(k for k in d.updates if k != "artifacts")):
        return None, changing
    return update(api, run_id, olds, inputs, now, taken=run), ()


def _create_run(api: MlflowApi, inputs: Mapping[str, Any], now: int, origin: RunOrigin | None) -> m.Run:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.run_apply import create_run, unfinished_tag
    from pulumi_mlflow_runs.core.run_origin import create_fields, run_user

    conn = api.transport.connection
    shown, user_id = create_fields(origin, run_user(conn.run_user, databricks=conn.databricks))
    # Without a start time the REST API records 0 (1970); MLflow's own client sends "now" too.
    start = inputs.get("start_time")
    req = m.CreateRun(
        experiment_id=inputs["experiment_id"],
        user_id=user_id,
        run_name=inputs.get("run_name"),
        start_time=now if start is None else start,
        tags=[*(unfinished_tag(inputs.get("resource_key")) or ()), *shown] or None,
    )
    try:
        return create_run(api, req)
    except NotFound as exc:
        raise InputError(
            "experiment_id",
            f"experiment {inputs['experiment_id']!r} does not exist on {api.transport.connection.base_url} "
            f"({exc.error_code})",
        ) from None


def _raise_if_not_stored(inputs: Mapping[str, Any], run: m.Run) -> None:
    """Refuse to report success when the server silently cut a value: that would be lost data."""
    from pulumi_mlflow_runs.core.run_plan import stored_mismatches

    mismatches = stored_mismatches(inputs, run)
    if mismatches:
        raise InputError(*mismatches[0])


_LEFT = {
    True: "it is marked complete, and the next `pulumi up` takes it back if it holds what the program declares",
    None: "it may be marked complete (the answer to its last request was lost): the next `pulumi up` finishes "
    "it, or takes it back if it holds what the program declares",
    False: "it is marked unfinished, and the next `pulumi up` finishes it",
}


def _rollback(api: MlflowApi, run_id: str, exc: BaseException, *, complete: bool | None) -> bool:
    """Delete the half-made run so a failed create leaves nothing behind; False if it is still there.
    ``complete``: the run was marked complete (the create's writes all went out); None: it may be."""
    try:
        api.delete_run(run_id)
    except Exception as cleanup:  # noqa: BLE001 - reported on the original error, which is raised
        then = _LEFT[complete]
        exc.add_note(f"the half-created run {run_id} could not be deleted ({cleanup}); {then}")
        return False
    exc.add_note(f"the half-created run {run_id} was deleted")
    return True


# ---- read -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadRun:
    outputs: dict[str, Any]
    inputs: dict[str, Any] | None
    """The inputs to record (None: keep the stored ones as they are)."""


def read_existing(api: MlflowApi, run_id: str) -> ReadRun | None:
    """A run that no state holds yet (an import, a ``get``), as inputs that describe it; None if there is none."""
    try:
        run = api.get_run(run_id)
    except NotFound:
        return None
    return described(api, run)


def described(api: MlflowApi, run: m.Run) -> ReadRun:
    """``run``, already read, as inputs that describe it and the outputs they make (a table's import reads its
    runs in searches)."""
    from pulumi_mlflow_runs.core.run_plan import adopted_inputs, outputs_for

    adopted = adopted_inputs(run, histories(api, run))
    return ReadRun(outputs_for(adopted, run), adopted)


def histories(api: MlflowApi, run: m.Run) -> dict[str, list[m.Metric]]:
    """Every point the run holds, by key (each metric's history)."""
    return {metric.key: api.get_metric_history(run.info.run_id, metric.key) for metric in run.data.metrics}


def refresh(
    api: MlflowApi, run_id: str, state: Mapping[str, Any], stored_inputs: Mapping[str, Any] | None
) -> ReadRun | None:
    """A managed run as the server has it now; None when it is gone for good (the engine drops it).

    ``state`` is the old outputs (``outputs_for``'s form); ``stored_inputs`` the inputs the state records,
    where the front door has them.
    """
    try:
        run = api.get_run(run_id)
    except NotFound:
        return None
    return refreshed(api, run, state, stored_inputs)


def refreshed(api: MlflowApi, run: m.Run, state: Mapping[str, Any], stored_inputs: Mapping[str, Any] | None) -> ReadRun:
    """``refresh`` of a run already read (a table reads its runs with one search per hundred)."""
    from pulumi_mlflow_runs.core.run_plan import refreshed_outputs

    fresh = dict(state)
    unfinished = False
    if fresh.get("run") is None:  # left by a failed step: what it logged is on the server, not in the state
        from pulumi_mlflow_runs.core.run_apply import is_unfinished

        fresh = _as_on_server(api, run, state, stored_inputs or state)
        unfinished = is_unfinished(run)
    elif stored_inputs is not None and (path := file_points.declared_path(stored_inputs)) is not None:
        # an append cut short logged rows the state does not know of: its progress tag says how many
        held = file_points.held(run, path, fresh.get(LOGGED))
        fresh[LOGGED] = held.as_dict() if held is not None else None
    if fresh.get("artifact_files"):
        from pulumi_mlflow_runs.core.artifacts.sync import refreshed_files

        fresh["artifact_files"] = refreshed_files(api, run.info.artifact_uri, fresh["artifact_files"])
    outputs = refreshed_outputs(fresh, run)
    if unfinished:  # a create that failed part-way: the state stays unread, so the next update finishes the run
        outputs["run"] = None
    return ReadRun(outputs, refreshed_inputs(stored_inputs, run))


def refreshed_inputs(stored: Mapping[str, Any] | None, run: m.Run) -> dict[str, Any] | None:
    """The stored inputs with refresh's findings: managed values as the server has them, and
    ``lifecycle_stage: deleted`` for a run deleted outside Pulumi. None where the stored inputs are not
    at hand, or hold assets without their contents (which could not be handed back): then the engine
    keeps them as they were.

    With these as old inputs, the next preview names what drifted, and ``ignore_changes`` (which resets
    a new input to its old one) keeps a value edited outside Pulumi. No key is added but
    ``lifecycle_stage``, and the engine marks secret again each value whose stored input was secret.
    """
    from pulumi_mlflow_runs.core.artifacts.files import holds_elided
    from pulumi_mlflow_runs.core.run_plan import refreshed_outputs

    if stored is None or any(holds_elided(stored.get(key)) for key in ("artifacts", "metrics_file")):
        return None
    inputs = dict(stored)
    inputs.pop("lifecycle_stage", None)
    fresh = refreshed_outputs(inputs, run)
    for key in INPUT_KEYS:
        # points stay as declared (they never drift); artifacts are assets, not refreshed in this version
        if inputs.get(key) is not None and key not in ("metrics", "artifacts"):
            if fresh.get(key) is None:
                inputs.pop(key)
            else:
                inputs[key] = fresh[key]
    if run.info.lifecycle_stage == "deleted":
        inputs["lifecycle_stage"] = "deleted"
    return inputs


# ---- update and delete ------------------------------------------------------------------------------------


def update(
    api: MlflowApi,
    run_id: str,
    olds: Mapping[str, Any],
    inputs: dict[str, Any],
    now: int,
    *,
    taken: m.Run | None = None,
) -> dict[str, Any]:
    """Send what takes the run from ``olds`` (metric points unpacked) to ``inputs``; the outputs afterwards.

    ``olds`` without ``run`` is the state a failed create or update left (``MlflowRunsError.left_behind``):
    what it sent is not known, so the run is read from the server first, and only what it lacks is sent.
    ``taken`` is a run a create takes over, as just read: a mark of an unfinished create on it goes.
    """
    from pulumi_mlflow_runs.core.artifacts.sync import sync
    from pulumi_mlflow_runs.core.run_apply import apply_writes, finish_unfinished
    from pulumi_mlflow_runs.core.run_plan import assign_timestamps, outputs_for, plan_writes, unread_state

    unread = olds.get("run") is None
    done: list[str] = []
    try:
        declared = inputs.get("metrics") or []
        if unread:
            found = api.get_run(run_id)
            olds = _as_on_server(api, found, olds, inputs)
        paired, _ = match_points(list(olds.get("metrics") or []), declared)
        if not unread and any(
            was is None and p.get("timestamp") is None for p, was in zip(declared, paired, strict=True)
        ):
            # New points get timestamps of their own; an earlier `up`, killed after its log-batch reached the
            # server, may have logged them with others, and MLflow drops only exact repeats.
            olds = _with_unrecorded(api, api.get_run(run_id), olds, declared, paired)
            paired, _ = match_points(list(olds.get("metrics") or []), declared)
        # Points already logged keep the timestamps they were logged with; new ones get "now".
        inputs["metrics"] = [
            dict(was) if was is not None else assign_timestamps([point], now)[0]
            for point, was in zip(declared, paired, strict=True)
        ]
        writes = plan_writes(run_id, olds, inputs, now)
        if unread or taken is not None:
            finish_unfinished(writes, taken or found)
        artifact_uri = olds.get("artifact_uri") or api.get_run(run_id).info.artifact_uri
        files = sync(api, artifact_uri, olds.get("artifact_files"), inputs.get("artifacts"), done)
        read = taken or (found if unread else None)
        inputs[LOGGED] = _file_rows(api, run_id, olds, inputs, now=now, run=read, done=done)
        apply_writes(api, writes, done)
        run = api.get_run(run_id)
        _raise_if_not_stored(inputs, run)
    except NotFound as exc:  # Diff does not read the server: a run removed for good shows up here
        exc.add_note(
            f"run {run_id} is no longer on the server (removed for good); `pulumi refresh` drops it from "
            "the state, and the next `pulumi up` creates it again"
        )
        raise
    except MlflowRunsError as exc:
        exc.add_note(
            f"run {run_id} was updated only in part; applied: {'; '.join(done) or 'nothing'}. "
            "Run `pulumi up` again: it sends only what is still missing."
        )
        exc.left_behind = unread_state({**olds, "run_id": run_id})
        raise
    return outputs_for(inputs, run, files)


def _file_rows(
    api: MlflowApi, run_id: str, olds: Mapping[str, Any], inputs: Mapping[str, Any], *, now: int, run: m.Run | None,
    done: list[str],
) -> dict[str, Any] | None:  # fmt: skip
    """Log the metrics file's rows the run lacks; the logged part afterwards. The run is read first (unless
    just read) when the file is longer than its logged part: its progress tag says where an append that was
    cut short stopped."""
    path = file_points.declared_path(inputs)
    if path is None:
        return None
    logged = olds.get(LOGGED)
    if not file_points.needs_sending(path, logged):
        return logged if isinstance(logged, dict) else None
    return file_points.send(api, run_id, path, logged, now=now, run=run or api.get_run(run_id), done=done)


def _with_unrecorded(
    api: MlflowApi,
    run: m.Run,
    olds: Mapping[str, Any],
    declared: list[dict[str, Any]],
    paired: list[Mapping[str, Any] | None],
) -> dict[str, Any]:
    """``olds`` with the declared points that are on the server but not in the state: an ``up`` killed after
    its log-batch reached the server, before the engine recorded the step, logged them. (A refresh cannot
    tell: the engine keeps the inputs of before the killed step, which do not declare them.)

    ``paired`` is ``match_points(olds' points, declared)``. The run's latest point per metric (``runs/get``)
    tells whether there are any, as long as new points come after the logged ones (a later step or time);
    only then are the histories of the keys with unrecorded declarations read. A point on the server that
    no declaration pairs with (a colleague's) is not taken in, as a refresh never takes it in.
    """
    from pulumi_mlflow_runs.core.run_plan import history_points, logged_point_id, unrecorded_on_server

    recorded = list(olds.get("metrics") or [])
    missing = [point for point, was in zip(declared, paired, strict=True) if was is None]
    if not missing or not unrecorded_on_server(recorded, {p["key"] for p in missing}, run):
        return dict(olds)
    on_server = history_points(
        {key: api.get_metric_history(run.info.run_id, key) for key in sorted({p["key"] for p in missing})}
    )
    left = Counter(logged_point_id(p) for p in recorded)  # the server's points less one of each recorded one
    unrecorded = []
    for point in on_server:
        ident = logged_point_id(point)
        if left[ident]:
            left[ident] -= 1
        else:
            unrecorded.append(point)
    found, _ = match_points(unrecorded, missing)
    return {**olds, "metrics": [*recorded, *(dict(point) for point in found if point is not None)]}


def _as_on_server(api: MlflowApi, run: m.Run, olds: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The state of a run that a failed step left, as the server has it (``run``, just read): what the program
    manages now or managed before (a tag it was removing), every point as logged, the files as last recorded."""
    from pulumi_mlflow_runs.core.run_plan import adopted_state

    history = histories(api, run)
    managed = {
        **inputs,
        "tags": {**(olds.get("tags") or {}), **(inputs.get("tags") or {})},
        **{name: inputs.get(name) or olds.get(name) for name in TAG_PROPS},
    }
    state = adopted_state(run, history, managed)
    state["artifact_files"] = olds.get("artifact_files")
    state[LOGGED] = olds.get(LOGGED)
    return file_points.on_server(state, run, inputs)


def delete(api: MlflowApi, run_id: str) -> str | None:
    """Delete the run; or keep it, and say why, when a create of this ``up`` took it back: the engine now
    holds it as the resource that replaces itself (``core.state_seen``)."""
    if state_seen.was_taken_back(run_id):
        return (
            f"run {run_id} is kept: the replace took it back, since it is exactly what the program declares "
            "(change the program, or delete the run, to make a new one)"
        )
    with contextlib.suppress(NotFound):  # already gone is success
        api.delete_run(run_id)
    return None

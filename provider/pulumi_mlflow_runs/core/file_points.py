"""A metrics file's rows on the server: sent exactly once, resumed where an append stopped, told apart from the
run's other points.

``metrics_file`` reads the file; this module sends it. Each log-batch carries the progress tag with the position
it reaches (``metrics_file.Progress``), so the next ``up`` after a kill or a failure starts from the tag where the
state is behind, and rows without a timestamp get the timestamp the append began with: MLflow drops a point sent
twice only when it is the very same point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core import metrics_file as mf
from pulumi_mlflow_runs.core.errors import InputError

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import MlflowApi
    from pulumi_mlflow_runs.core.created_run import LatestPoints


def declared_path(inputs: Mapping[str, Any]) -> str | None:
    """The file ``metrics_file`` names: from Check's summary (the engine may hand the asset without its path),
    else from the asset."""
    if inputs.get(mf.PROP) is None:
        return None
    summary = mf.Summary.of(inputs.get(mf.SUMMARY))
    if summary is not None:
        return summary.path
    path = getattr(inputs[mf.PROP], "path", None)
    return str(path) if isinstance(path, str) else None


def progress_of(run: m.Run) -> mf.Progress | None:
    return mf.Progress.of(next((t.value for t in run.data.tags if t.key == mf.PROGRESS_TAG), None))


def needs_sending(path: str, logged: Any) -> bool:
    """Whether the file may hold rows past the logged part (it is longer): only then is the run read first."""
    import os

    have = mf.Logged.of(logged)
    try:
        return os.path.getsize(path) > (have.bytes if have is not None else 0)
    except OSError:
        return True  # the send names the problem


def send(
    api: MlflowApi,
    run_id: str,
    path: str,
    logged: Any,
    *,
    now: int,
    run: m.Run | None,
    done: list[str],
    tail: m.LogBatch | None = None,
    latest: LatestPoints | None = None,
) -> dict[str, Any] | None:
    """Log the file's rows past ``logged`` (state's, or the progress tag on ``run`` where it is ahead); the
    logged part afterwards (``metrics_file_logged``).

    ``tail``: a log-batch to send after the rows, in the last batch of them where it fits (a create's params,
    tags and completion mark: one request fewer). ``latest`` notes each key's latest point sent."""
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.exactly_once import send_exactly_once
    from pulumi_mlflow_runs.core.run_apply import needs_mlflow3

    have = mf.Logged.of(logged)
    try:
        start, stamp = mf.resume_point(path, have, progress_of(run) if run is not None else None, now)
        position = start
        sent = 0
        opened = False
        version_checked = False
        for batch in mf.batches(path, start, stamp):
            if not version_checked and batch.mlflow3_field is not None:
                too_old = needs_mlflow3(api, mf.PROP, f"a metric point's {batch.mlflow3_field}")
                if too_old is not None:
                    raise too_old
                version_checked = True
            if batch.stamped and not opened:
                # Before the first row stamped here: where this append starts, and with which timestamp.
                at = mf.Progress(position or mf.Logged(0, 0, mf.EMPTY_SHA256), stamp, open=True)
                api.set_tag(m.SetTag(run_id=run_id, key=mf.PROGRESS_TAG, value=at.tag_value()))
                opened = True
            body = batch_body(run_id, batch)
            if latest is not None:
                latest.note_wire(batch.points)
            if tail is not None and not batch.progress.open and _fits(batch, tail):
                body = _with_tail(body, tail)
                tail = None
            send_exactly_once(api.transport, body, api.log_batch_body, lambda b: unlogged_body(api, b))
            position = batch.progress.logged
            sent += len(batch.points)
    except mf.FileProblem as exc:
        raise InputError(mf.PROP, str(exc)) from None
    if tail is not None:
        from pulumi_mlflow_runs.core.run_apply import send_batch

        send_batch(api, tail)
    if sent:
        done.append(f"logged {sent} point(s) of {path}")
    return position.as_dict() if position is not None else None


def batch_body(run_id: str, batch: mf.Batch) -> dict[str, Any]:
    """The log-batch of ``batch`` in wire form: the reader's points are already what MLflow takes (a finite
    float or MLflow's non-finite string as value, whole step and timestamp), so no model is built for them."""
    return {
        "run_id": run_id,
        "metrics": batch.points,
        "tags": [{"key": mf.PROGRESS_TAG, "value": batch.progress.tag_value()}],
    }


def _fits(batch: mf.Batch, tail: m.LogBatch) -> bool:
    """Whether ``tail`` joins the last batch of rows within log-batch's limits (the rows' batch holds the
    progress tag besides its points)."""
    from pulumi_mlflow_runs.core import run_plan as rp

    metrics, params, tags = tail.metrics or [], tail.params or [], tail.tags or []
    items: list[m.Metric | m.Param | m.RunTag] = [*metrics, *params, *tags]
    return (
        len(batch.points) + 1 + len(metrics) + len(params) + len(tags) <= rp.BATCH_MAX_ITEMS
        and len(batch.points) + len(metrics) <= rp.BATCH_MAX_METRICS
        and 1 + len(tags) <= rp.BATCH_MAX_TAGS
        and batch.size + sum(map(rp.size_bound, items)) <= mf.BATCH_BYTES
    )


def _with_tail(body: dict[str, Any], tail: m.LogBatch) -> dict[str, Any]:
    from pulumi_mlflow_runs.core.client import wire_body

    more = wire_body(tail)
    return {
        "run_id": body["run_id"],
        "metrics": [*body["metrics"], *more.get("metrics", ())],
        "params": more.get("params", []),
        "tags": [*body["tags"], *more.get("tags", ())],
    }


def unlogged_body(api: MlflowApi, body: dict[str, Any]) -> dict[str, Any] | None:
    """After an uncertain outcome, what of the log-batch ``body`` the server lacks (``run_apply.unlogged``), in
    wire form; None if it holds all of it. The fault path alone validates the points into models."""
    from pulumi_mlflow_runs.core import models as m
    from pulumi_mlflow_runs.core.client import wire_body
    from pulumi_mlflow_runs.core.run_apply import unlogged as unlogged_batch

    rest = unlogged_batch(api, m.LogBatch.model_validate(body))
    return wire_body(rest) if rest is not None else None


def held(run: m.Run, path: str | None, logged: Any) -> mf.Logged | None:
    """How much of the file ``run`` holds: the progress tag's position where the file still starts with it,
    else state's ``logged``."""
    have = mf.Logged.of(logged)
    progress = progress_of(run)
    if path is None or progress is None:
        return have
    ahead = progress.logged.bytes > (have.bytes if have else 0)
    if ahead and mf.prefix_sha256(path, progress.logged.bytes) == progress.logged.sha256:
        return progress.logged
    return have


def without_file_points(points: list[dict[str, Any]], path: str, upto: mf.Logged | None) -> list[dict[str, Any]]:
    """A run's logged points less those of the file's first ``upto.rows`` rows (a row without timestamp matches
    a point of its key, step and value logged at any time): the points the ``metrics`` input accounts for."""
    if upto is None or not upto.rows:
        return points
    # Every complete row, not only the first ``upto.rows``: MLflow writes a batch's points before its progress
    # tag, so a run cut short may hold a few rows more than its tag says.
    exact: Counter[tuple[Any, ...]] = Counter()
    loose: Counter[tuple[Any, ...]] = Counter()
    try:
        for row in mf.logged_rows(path):
            ident = (row["key"], row.get("step", 0), repr(float(row["value"])))
            if "timestamp" in row:
                exact[(*ident, row["timestamp"])] += 1
            else:
                loose[ident] += 1
    except mf.FileProblem as exc:
        raise InputError(mf.PROP, str(exc)) from None
    kept = []
    for point in points:
        ident = (point.get("key"), point.get("step") or 0, repr(float(point["value"])))
        full = (*ident, point.get("timestamp"))
        if exact[full]:
            exact[full] -= 1
        elif loose[ident]:
            loose[ident] -= 1
        else:
            kept.append(point)
    return kept


def on_server(state: dict[str, Any], run: m.Run, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` read from the server (every point the run holds in ``metrics``) with the file's rows told apart:
    ``metrics_file_logged`` as far as the run holds the file, ``metrics`` the other points."""
    path = declared_path(inputs)
    if path is None:
        return state
    upto = held(run, path, state.get(mf.LOGGED))
    state["metrics"] = without_file_points(list(state.get("metrics") or []), path, upto)
    state[mf.LOGGED] = upto.as_dict() if upto is not None else None
    return state

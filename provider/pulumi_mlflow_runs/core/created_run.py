"""The run a create leaves, told from what the create sent, so that it need not read the run back.

A ``runs/get`` after every create was one request in four for a small run (the script it replaces sends three):
its answer is what the create sent, but for what the server decides itself (the run's name when none is given,
its user, its artifact root: all in the ``runs/create`` answer) and for what a server may change (a long value it
cuts, dataset and model records it completes, non-finite values it stores its own way). The run is read back only
where one of those is in the create (``needs_read``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.run_plan import Writes


class LatestPoints:
    """Each key's latest point by MLflow's rule, of the points a create sends: the greatest ``(step, timestamp,
    value)``, a later equal one changing nothing (the SQL store's ``_update_latest_metrics_if_necessary``).
    ``known`` turns False at a point whose latest the server may tell differently (a non-finite value, which the
    SQL store keeps as 0 beside a flag; dataset or model fields, which only some servers keep)."""

    def __init__(self) -> None:
        self._best: dict[str, tuple[int, int, float]] = {}
        self.known = True

    def note_wire(self, points: Iterable[Mapping[str, Any]]) -> None:
        """Points in wire form, each with its step and timestamp (a metrics file's rows, as read)."""
        if not self.known:
            return
        best = self._best
        for point in points:
            value = point["value"]
            # A non-finite value arrives as MLflow's string; a fifth field is a dataset's or a model's.
            if type(value) is not float or value - value != 0 or len(point) > 4:
                self.known = False
                return
            ident = (point["step"], point["timestamp"], value)
            key = point["key"]
            have = best.get(key)
            if have is None or ident > have:
                best[key] = ident

    def note_models(self, points: Iterable[m.Metric]) -> None:
        self.note_wire(
            {"key": p.key, "value": float(p.value), "step": p.step, "timestamp": p.timestamp}
            if p.dataset_name is None and p.dataset_digest is None and p.model_id is None
            else {"key": p.key, "value": math.nan, "step": p.step, "timestamp": p.timestamp}
            for p in points
        )

    def metrics(self) -> list[m.Metric]:
        return [
            m.Metric(key=key, value=value, step=step, timestamp=timestamp)
            for key, (step, timestamp, value) in sorted(self._best.items())
        ]


def needs_read(databricks: bool, writes: Writes, latest: LatestPoints) -> bool:
    """Whether the create's result must be read from the server: something in it the server may store otherwise
    than sent. A Databricks workspace is always read: its limits and records are its own."""
    return (
        databricks
        or not latest.known
        or bool(writes.long_params or writes.long_tags or writes.inputs or writes.outputs or writes.restore)
    )


def created_run(made: m.Run, writes: Writes, latest: LatestPoints) -> m.Run:
    """The run as ``runs/get`` would show it after the create: ``made`` (the ``runs/create`` answer) with the
    params, tags, status and end time the create sent and each key's latest point (the metrics file's progress
    tag, which no output shows, left out)."""
    params: dict[str, str] = {}
    tags = {t.key: t.value for t in made.data.tags}
    for batch in writes.batches:
        params.update((p.key, p.value) for p in batch.params or ())
        tags.update((t.key, t.value) for t in batch.tags or ())
    info = made.info
    if writes.update is not None:
        changed = {k: getattr(writes.update, k) for k in ("run_name", "status", "end_time")}
        info = info.model_copy(update={k: v for k, v in changed.items() if v is not None})
        if writes.update.run_name is not None:
            tags["mlflow.runName"] = writes.update.run_name
    return m.Run(
        info=info,
        data=m.RunData(
            metrics=latest.metrics(),
            params=[m.Param(key=k, value=v) for k, v in params.items()],
            tags=[m.RunTag(key=k, value=v) for k, v in tags.items()],
        ),
    )

"""The run a create leaves, told from what the create sent, so that it need not read the run back.

A ``runs/get`` after every create was one request in four for a small run (the script it replaces sends three):
its answer is what the create sent, but for what the server decides itself (the run's name when none is given,
its user, its artifact root: all in the ``runs/create`` answer) and for what a server may change (a long value it
cuts, dataset and model records it completes, non-finite values it stores its own way). The run is read back only
where one of those is in the create (``needs_read``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.run_plan import Writes

_KEY = itemgetter("key")
_VALUE = itemgetter("value")
_RANK = itemgetter("step", "timestamp", "value")
_FEW_KEYS = 4
"""Up to this many keys in a batch, one ``max`` per key; more, a point at a time."""


class LatestPoints:
    """Each key's latest point by MLflow's rule, of the points a create sends: the greatest ``(step, timestamp,
    value)``, a later equal one changing nothing (the SQL store's ``_update_latest_metrics_if_necessary``).
    ``known`` turns False at a point whose latest the server may tell differently (a non-finite value, which the
    SQL store keeps as 0 beside a flag; dataset or model fields, which only some servers keep)."""

    def __init__(self) -> None:
        self._best: dict[str, tuple[int, int, float]] = {}
        self.known = True

    def note_wire(self, points: Sequence[Mapping[str, Any]]) -> None:
        """Points in wire form, each with its step and timestamp (a metrics file's rows, as read). Done a batch at
        a time in C where it can (per key, ``max``): a point at a time cost a create of 20,000 rows 15 ms."""
        if not self.known or not points:
            return
        # A non-finite value arrives as MLflow's string; a fifth field is a dataset's or a model's.
        if set(map(type, map(_VALUE, points))) != {float} or max(map(len, points)) > 4:
            self.known = False
            return
        keys = set(map(_KEY, points))
        if len(keys) == 1:
            self._take(next(iter(keys)), max(map(_RANK, points)))
        elif len(keys) <= _FEW_KEYS:
            for key in keys:
                self._take(key, max(_RANK(p) for p in points if p["key"] == key))
        else:
            for point in points:
                self._take(point["key"], _RANK(point))

    def _take(self, key: str, ident: tuple[int, int, float]) -> None:
        have = self._best.get(key)
        if have is None or ident > have:
            self._best[key] = ident

    def note_models(self, points: Sequence[m.Metric]) -> None:
        if any(
            p.dataset_name is not None
            or p.dataset_digest is not None
            or p.model_id is not None
            or not math.isfinite(p.value)
            for p in points
        ):
            self.known = False
            return
        self.note_wire(
            [{"key": p.key, "value": float(p.value), "step": p.step, "timestamp": p.timestamp} for p in points]
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

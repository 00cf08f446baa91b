"""Reading runs (runs/get, runs/search with paging) and their results, for every front door: the program
functions of the dynamic door, the native plugin's invokes and the command-line tool."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.errors import InputError

VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
"""The seed's ``run_view_type`` values; servers silently ignore others, so they are refused here."""
MAX_SEARCH_RESULTS = 50_000
"""The seed's threshold for ``max_results``."""
MAX_PAGE_SIZE = 1_000
"""Runs asked for per runs/search request (the largest page every server accepts)."""


# ---- the result ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run as a program reads it: the typed ``info``, and params, tags and latest metrics as dicts."""

    run_id: str
    info: m.RunInfo
    """Run metadata: ``experiment_id``, ``run_name``, ``status``, ``start_time``, ``lifecycle_stage``, ..."""
    params: Mapping[str, str]
    tags: Mapping[str, str]
    """Every tag, including the server's (``mlflow.user``, ``mlflow.runName``, ...)."""
    metrics: Mapping[str, float]
    """Latest value per key (latest timestamp, then the largest value); may be NaN or ±Infinity."""
    inputs: m.RunInputs
    outputs: m.RunOutputs
    run: m.Run = field(repr=False, compare=False)
    """The whole response, for what the fields above leave out (a latest point's step and timestamp)."""

    @classmethod
    def from_run(cls, run: m.Run) -> RunResult:
        return cls(
            run_id=run.info.run_id,
            info=run.info,
            params={p.key: p.value for p in run.data.params},
            tags={t.key: t.value for t in run.data.tags},
            metrics=_latest_values(run.data.metrics),
            inputs=run.inputs,
            outputs=run.outputs,
            run=run,
        )

    def to_dict(self) -> dict[str, Any]:
        """The GetRun view as JSON-safe data (NaN/±Infinity as MLflow's strings), for ``pulumi.export``.

        The same shape as the ``run`` output of ``ExperimentRun``.
        """
        return self.run.model_dump(mode="json", exclude_none=True, by_alias=True)


def _latest_values(points: Sequence[m.Metric]) -> dict[str, float]:
    """Servers send one point per key already; keep MLflow's tie rule should one send more."""
    best: dict[str, m.Metric] = {}
    for point in points:
        cur = best.get(point.key)
        if cur is None or (point.timestamp, point.value) > (cur.timestamp, cur.value):
            best[point.key] = point
    return {key: point.value for key, point in best.items()}


# ---- validation (before any request) --------------------------------------------------------------------


def _strings(prop: str, value: Any, *, required: bool) -> list[str] | None:
    """A list of non-empty strings; a bare string is one item (not a list of characters)."""
    if value is None:
        if required:
            raise InputError(prop, "is required")
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(prop, f"must be a string or a list of strings, got {type(value).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise InputError(f"{prop}[{i}]", f"must be a non-empty string, got {item!r}")
    if required and not items:
        raise InputError(prop, "must name at least one experiment")
    return list(items)


def count(prop: str, value: Any, limit: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # numbers that went through the engine arrive as floats
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(prop, f"must be a whole number, got {value!r}")
    if not 1 <= value <= limit:
        raise InputError(prop, f"must be between 1 and {limit}, got {value}")
    return value


def search_request(
    experiment_ids: Any, filter: Any, order_by: Any, max_results: Any, run_view_type: Any
) -> m.SearchRuns:
    ids = _strings("experiment_ids", experiment_ids, required=True)
    assert ids is not None
    if filter is not None and not isinstance(filter, str):
        raise InputError("filter", f"must be a string, got {type(filter).__name__}")
    if run_view_type not in VIEW_TYPES:
        raise InputError("run_view_type", f"must be one of {', '.join(VIEW_TYPES)}, got {run_view_type!r}")
    return m.SearchRuns(
        experiment_ids=ids,
        filter=filter or None,
        order_by=_strings("order_by", order_by, required=False) or None,
        max_results=count("max_results", max_results, MAX_SEARCH_RESULTS),
        run_view_type=run_view_type,
    )


def checked_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise InputError("run_id", f"must be a non-empty string, got {run_id!r}")
    return run_id


# ---- connection ----------------------------------------------------------------------------------------


def iter_search_runs(api: MlflowApi, req: m.SearchRuns, *, page_size: int | None = None) -> Iterator[m.Run]:
    """Every matching run, page by page (smaller pages: smaller answers), up to ``req.max_results``."""
    return api.search_runs(req, page_size=count("page_size", page_size, MAX_PAGE_SIZE) or MAX_PAGE_SIZE)

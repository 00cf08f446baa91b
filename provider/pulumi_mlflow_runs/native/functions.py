"""The plugin's functions (``getRun``, ``searchRuns``): one entry per token, each the core's search on a
client the protocol layer resolved, the result in the schema's names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.native import schema

if TYPE_CHECKING:
    from pulumi_mlflow_runs.core.client import MlflowApi


@dataclass(frozen=True)
class Function:
    props: tuple[d.Prop, ...]
    """Its arguments, for their names on the wire."""
    call: Callable[[MlflowApi, Mapping[str, Any]], dict[str, Any]]


def _get_run(api: MlflowApi, args: Mapping[str, Any]) -> dict[str, Any]:
    from pulumi_mlflow_runs.core import search

    return _run_result(api.get_run(search.checked_run_id(args.get("run_id"))))


def _search_runs(api: MlflowApi, args: Mapping[str, Any]) -> dict[str, Any]:
    from pulumi_mlflow_runs.core import search

    req = search.search_request(
        args.get("experiment_ids"),
        args.get("filter"),
        args.get("order_by"),
        args.get("max_results"),
        args.get("run_view_type") or "ACTIVE_ONLY",
    )
    return {"runs": [_run_result(run) for run in search.iter_search_runs(api, req)]}


def _run_result(run: Any) -> dict[str, Any]:
    from pulumi_mlflow_runs.core.search import RunResult

    found = RunResult.from_run(run)
    return {
        "runId": found.run_id,
        "info": found.info.model_dump(mode="json", exclude_none=True, by_alias=True),
        "params": dict(found.params),
        "tags": dict(found.tags),
        "metrics": dict(found.metrics),
        "run": found.to_dict(),
    }


FUNCTIONS: dict[str, Function] = {
    schema.GET_RUN_TOKEN: Function(schema.GET_RUN_INPUTS, _get_run),
    schema.SEARCH_RUNS_TOKEN: Function(schema.SEARCH_RUNS_INPUTS, _search_runs),
}

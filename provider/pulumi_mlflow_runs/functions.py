"""The program functions' public module path (``from pulumi_mlflow_runs.functions import search_runs``); they
live in the dynamic front door (``dynamic.functions``), on the core's ``search``."""

from pulumi_mlflow_runs.dynamic.functions import (
    MAX_PAGE_SIZE,
    MAX_SEARCH_RESULTS,
    VIEW_TYPES,
    RunResult,
    get_run,
    get_run_output,
    iter_search_runs,
    search_runs,
    search_runs_output,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_SEARCH_RESULTS",
    "VIEW_TYPES",
    "RunResult",
    "get_run",
    "get_run_output",
    "iter_search_runs",
    "search_runs",
    "search_runs_output",
]

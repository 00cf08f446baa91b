"""Program functions: read MLflow runs from a Pulumi program, in the Pulumi Databricks provider's style.

``search_runs`` / ``get_run`` take plain values and return typed results; ``search_runs_output`` /
``get_run_output`` take and return ``pulumi.Output``. They call the REST API from the program's own
process (not through the engine) and only read, so they run during ``pulumi preview`` as well as
``pulumi up``. While an input of an ``*_output`` form is unknown (a preview of a resource not created
yet), its result stays unknown and nothing is sent.

The server is chosen by the provider's rules, first match wins: the ``host`` / ``deployment_name``
arguments; stack config ``databricks:*`` / ``mlflow:*`` (inside a program); env
``MLFLOW_TRACKING_URI``; env ``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN`` or a ``~/.databrickscfg`` profile.
Retries follow the provider's policy too (stack config ``mlflow-runs:retryDeadline`` or env
``PULUMI_MLFLOW_RUNS_RETRY_DEADLINE``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pulumi

from pulumi_mlflow_runs.core.auth import StackConfig, resolve_connection
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.retries import RetryPolicy, retry_policy
from pulumi_mlflow_runs.core.search import (
    MAX_PAGE_SIZE,
    MAX_SEARCH_RESULTS,
    VIEW_TYPES,
    RunResult,
    checked_run_id,
    count,
    iter_search_runs,
    search_request,
)
from pulumi_mlflow_runs.core.settings import STACK_KEYS, check_stack_config
from pulumi_mlflow_runs.core.transport import TransportPool

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

T = TypeVar("T")


class _Shared:
    """What every call in this process shares, built on first use: a connection pool (one per retry
    policy; normally one), and the threads the ``*_output`` forms block in (their own, so a slow search
    never holds one of the engine's RPC threads, which are the event loop's default executor)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[RetryPolicy, TransportPool] = {}
        self._executor: ThreadPoolExecutor | None = None

    def pool(self, policy: RetryPolicy) -> TransportPool:
        with self._lock:
            pool = self._pools.get(policy)
            if pool is None:
                pool = self._pools[policy] = TransportPool(policy=policy)
                atexit.register(pool.close)
            return pool

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pulumi-mlflow-runs")
            return self._executor


_SHARED = _Shared()


def _in_worker(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Run a blocking call off the event loop; the context (with the stack config) goes along."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(_SHARED.executor(), call)


def _program_settings() -> tuple[StackConfig, RetryPolicy]:
    """The provider's settings from the running program's stack config; env only outside a program.

    Stack config: the keys the provider reads (``databricks:*``, ``mlflow:*``) and
    ``mlflow-runs:retryDeadline``. Read on every call, not cached: one process can run several stacks
    (Automation API inline programs).
    """

    def get(key: str) -> str | None:
        namespace, _, name = key.partition(":")
        return pulumi.Config(namespace).get(name)

    try:
        stack = StackConfig.from_config(get)
        deadline = get(STACK_KEYS.retry_deadline)
    except Exception:  # noqa: BLE001 - no program, no stack config: the env rules still apply
        stack, deadline = StackConfig(), None
    check_stack_config(stack)
    return stack, retry_policy(deadline)


def _api(host: str | None, deployment_name: str | None) -> MlflowApi:
    # Resolved per call (cheap for tokens); the pool underneath, with its connections, is shared.
    stack, policy = _program_settings()
    connection = resolve_connection(host=host, deployment_name=deployment_name, stack=stack)
    return MlflowApi(_SHARED.pool(policy).get(connection))


# ---- plain functions -----------------------------------------------------------------------------------


def search_runs(
    experiment_ids: str | Sequence[str],
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_results: int | None = None,
    run_view_type: str = "ACTIVE_ONLY",
    *,
    page_size: int | None = None,
    host: str | None = None,
    deployment_name: str | None = None,
    client: MlflowApi | None = None,
) -> list[RunResult]:
    """Runs of the experiments that match ``filter``, in ``order_by`` order, following page tokens.

    :param experiment_ids: one experiment id or a list of them.
    :param filter: MLflow's search syntax, e.g. ``metrics.rmse < 1 and params.model = 'x'``, ``tags.team = 'a'``,
        ``attributes.run_name = 'r'``.
    :param order_by: e.g. ``["metrics.rmse ASC", "attributes.start_time DESC"]``; the server's default is
        start_time DESC, then run_id.
    :param max_results: at most this many runs (1-50,000); all matching runs when absent.
    :param run_view_type: ``ACTIVE_ONLY``, ``DELETED_ONLY`` or ``ALL``.
    :param page_size: runs per request (1-1,000, default 1,000).
    :param host: base URL of the server (else stack config, then env).
    :param deployment_name: a Databricks workspace ``https://<deployment_name>.cloud.databricks.com``.
    :param client: an ``MlflowApi`` to use instead of resolving a connection (scripts and tests).
    :raises InputError: before any request, for a bad argument.
    """
    req = search_request(experiment_ids, filter, order_by, max_results, run_view_type)
    count("page_size", page_size, MAX_PAGE_SIZE)
    api = client or _api(host, deployment_name)
    return [RunResult.from_run(run) for run in iter_search_runs(api, req, page_size=page_size)]


def get_run(
    run_id: str,
    *,
    host: str | None = None,
    deployment_name: str | None = None,
    client: MlflowApi | None = None,
) -> RunResult:
    """One run by id (runs/get); deleted runs are found too (see ``info.lifecycle_stage``).

    :raises ResourceDoesNotExist: no run has that id.
    """
    rid = checked_run_id(run_id)
    api = client or _api(host, deployment_name)
    return RunResult.from_run(api.get_run(rid))


# ---- Output forms ----------------------------------------------------------------------------------------


def search_runs_output(
    experiment_ids: pulumi.Input[str | Sequence[pulumi.Input[str]]],
    filter: pulumi.Input[str | None] = None,
    order_by: pulumi.Input[str | Sequence[pulumi.Input[str]] | None] = None,
    max_results: pulumi.Input[int | None] = None,
    run_view_type: pulumi.Input[str] = "ACTIVE_ONLY",
    *,
    page_size: int | None = None,
    host: pulumi.Input[str | None] = None,
    deployment_name: pulumi.Input[str | None] = None,
) -> pulumi.Output[list[RunResult]]:
    """``search_runs`` over Outputs: runs once every argument is known, in a worker thread."""
    args = pulumi.Output.all(
        experiment_ids=experiment_ids,
        filter=filter,
        order_by=order_by,
        max_results=max_results,
        run_view_type=run_view_type,
        host=host,
        deployment_name=deployment_name,
    )

    def run(a: Any) -> asyncio.Future[list[RunResult]]:
        return _in_worker(search_runs, **a, page_size=page_size)

    return args.apply(run)


def get_run_output(
    run_id: pulumi.Input[str],
    *,
    host: pulumi.Input[str | None] = None,
    deployment_name: pulumi.Input[str | None] = None,
) -> pulumi.Output[RunResult]:
    """``get_run`` over Outputs: e.g. ``get_run_output(some_run.run_id)``; unknown while the id is."""
    args = pulumi.Output.all(run_id=run_id, host=host, deployment_name=deployment_name)

    def run(a: Any) -> asyncio.Future[RunResult]:
        return _in_worker(get_run, a["run_id"], host=a["host"], deployment_name=a["deployment_name"])

    return args.apply(run)

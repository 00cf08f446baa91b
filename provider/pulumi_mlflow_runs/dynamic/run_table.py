"""``RunTable`` for Python programs with nothing to install: a table of MLflow runs as one resource, on the
dynamic provider host (``dynamic.table_provider``). The same inputs as the plugin's ``RunTable``, in snake_case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from pulumi_mlflow_runs.dynamic.elided_assets import sendable
from pulumi_mlflow_runs.dynamic.experiment_run import (
    _encode_metric_points,
    _plain,
    _secret_now,
    _stringify_params,
    of_parent_urn,
)
from pulumi_mlflow_runs.dynamic.provider_base import fresh_pickler
from pulumi_mlflow_runs.dynamic.table_provider import STATE_OUTPUTS, RunTableProvider

_ECHOING = ("run_states", "latest_metrics")
"""Outputs that hold values of the entries: secret when a value in ``runs`` is (see ``TableSecrets``)."""


class RunTable(dyn.Resource, module="mlflow", name="RunTable"):
    """A table of MLflow runs in one experiment, as one resource: ``runs`` maps a key you choose to what an
    ``ExperimentRun`` takes besides the experiment and the connection (snake_case, ``adopt_run_id`` and
    ``metrics_file`` included). The run's name is its key unless the entry gives ``run_name``.

    ``runs_file`` names a file of entries the provider reads instead (or beside: each key in one of them).
    An added entry creates its run, a removed one deletes it, a changed one updates or replaces that run alone,
    by ``ExperimentRun``'s rules; a replace of one run is an update of the table. Only ``experiment_id``,
    ``host`` or ``deployment_name`` replace the whole table. The runs are written on at most ``max_parallel``
    threads (1-32, default 4). A failed ``up`` leaves every run it finished on the server, and the next ``up``
    takes them over, so no run is made twice.
    """

    run_ids: pulumi.Output[dict[str, str]]
    """The run id of each entry, by its key."""
    latest_metrics: pulumi.Output[dict[str, dict[str, Any]]]
    """Each entry's latest value per metric key, by its key."""
    run_states: pulumi.Output[dict[str, Any]]
    """Each entry's run as an ``ExperimentRun`` of this door keeps it (``run``, ``logged_points``, ...)."""
    retired_run_ids: pulumi.Output[list[str]]
    table_key: pulumi.Output[str]
    """What the table's runs are marked with: ``pulumi.resource_key`` is ``<table_key>.<entry digest>``."""
    experiment_id: pulumi.Output[str]
    host: pulumi.Output[str | None]
    deployment_name: pulumi.Output[str | None]
    max_parallel: pulumi.Output[int | None]

    def __init__(
        self,
        resource_name: str,
        *,
        experiment_id: pulumi.Input[str],
        runs: pulumi.Input[Mapping[str, pulumi.Input[Mapping[str, Any]]]] | None = None,
        runs_file: pulumi.Input[pulumi.FileAsset] | None = None,
        max_parallel: pulumi.Input[int] | None = None,
        host: pulumi.Input[str] | None = None,
        deployment_name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Declare a table of runs.

        :param experiment_id: the experiment that holds every run (a change replaces the table).
        :param runs: ``{"bert-sst2": {"params": {...}, "tags": {...}, "metrics": [...], ...}, ...}``.
        :param runs_file: the entries from a file (``pulumi.FileAsset("results.csv")``; CSV, YAML or JSON, as the
            reference says), read by the provider: a thousand entries cost the program nothing to send.
        :param max_parallel: requests in flight for the table's writes (1-32, default 4).
        :param host: base URL of a workspace or tracking server (overrides stack config and env).
        :param deployment_name: a Databricks workspace ``https://<deployment_name>.cloud.databricks.com``.
        """
        if opts is not None and opts.import_ is not None:
            raise pulumi.RunError(f"RunTable {resource_name!r}: the import_ option is not supported in this version")
        inputs: dict[str, Any] = {
            "experiment_id": experiment_id,
            "runs": None if runs is None else _sendable_runs(runs),
            "runs_file": runs_file,
            "max_parallel": max_parallel,
            "host": host,
            "deployment_name": deployment_name,
        }
        props = {k: v for k, v in inputs.items() if v is not None}
        props["table_key"] = _table_key(resource_name, opts)
        props.update({key: None for key in STATE_OUTPUTS if key not in props})
        opts = pulumi.ResourceOptions.merge(opts, None)  # a copy: the caller's options stay as they were
        opts.additional_secret_outputs = TableSecrets(opts.additional_secret_outputs or [], runs)
        fresh_pickler()
        super().__init__(RunTableProvider(), resource_name, props, opts)


def _pending(value: Any) -> bool:
    return isinstance(value, pulumi.Output) or hasattr(value, "__await__")


def _sendable_runs(runs: Any) -> Any:
    """Each entry made sendable on its own, so that a secret in one entry leaves the others (and its own other
    values) plain, and a preview still shows each entry's changes."""
    if _pending(runs):
        return pulumi.Output.from_input(runs).apply(_sendable_runs)
    if not isinstance(runs, Mapping):
        return runs  # Check names it
    return {key: _sendable_entry(entry) for key, entry in runs.items()}


def _sendable_entry(entry: Any) -> Any:
    """An entry as ``ExperimentRun`` sends its inputs: params as text, non-finite values as MLflow's strings,
    empty files as ``EMPTY_FILE``."""
    if _pending(entry):
        return pulumi.Output.from_input(entry).apply(_sendable_entry)
    if not isinstance(entry, Mapping):
        return entry
    out = dict(entry)
    if out.get("params") is not None:
        out["params"] = _plain(out["params"], _stringify_params)
    if out.get("metrics") is not None:
        out["metrics"] = _plain(out["metrics"], _encode_metric_points)
    if out.get("artifacts") is not None:
        out["artifacts"] = sendable(out["artifacts"])
    return out


def _table_key(name: str, opts: pulumi.ResourceOptions | None) -> pulumi.Input[str]:
    """The table's key (``core.resource_key.of_parts``), the plugin's for the same URN: its runs are marked with
    it, so the next ``up`` finds the runs a failed or killed one made."""
    from pulumi_mlflow_runs.core import resource_key

    def key(parent_urn: str) -> str:
        return resource_key.of_parts(
            pulumi.get_stack(), pulumi.get_project(), resource_key.parent_types(parent_urn), name
        )

    return of_parent_urn(opts, key)


class TableSecrets(list[str]):
    """``additional_secret_outputs`` that follow ``runs``: the outputs holding the entries' values are secret when
    any value in ``runs`` is (decided when the SDK reads this list, after every input resolved; see
    ``experiment_run.EchoedSecrets``). As a plain list it holds every candidate."""

    def __init__(self, declared: list[str], runs: Any) -> None:
        super().__init__([*declared, *(name for name in _ECHOING if name not in declared)])
        self._declared = list(declared)
        self._runs = runs

    def __iter__(self) -> Iterator[str]:
        secret = _secret_now(self._runs)
        return iter([*self._declared, *(n for n in _ECHOING if secret and n not in self._declared)])

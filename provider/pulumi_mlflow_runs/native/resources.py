"""``ExperimentRun`` and ``Experiment`` of the ``mlflow-runs`` plugin, for Python programs.

They take the keyword arguments of the dynamic door's classes (snake_case, metric points as dicts), so a
program moves between the doors by changing an import, and they read back in snake_case
(``run.run_id``). On the wire they speak the schema's camelCase: the names come from
``core.definitions``, and only the names this package defines are renamed, never a key the user wrote
(a param named ``run_name`` stays one), which the SDK's own key translation would not promise for a
dict. The engine runs them on ``pulumi-resource-mlflow-runs``, which ``pip install pulumi-mlflow-runs``
puts on PATH; nothing of them runs in the plugin.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pulumi

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core.table_definitions import TABLE_INPUTS, TABLE_OUTPUTS
from pulumi_mlflow_runs.native.names import convert
from pulumi_mlflow_runs.native.schema import EXPERIMENT_TOKEN, RUN_TOKEN, TABLE_TOKEN
from pulumi_mlflow_runs.native.state import STATE_OUTPUTS


def _nested(prop: d.Prop) -> bool:
    """Whether values of ``prop`` hold names of ours (``dataset_name`` in a metric point)."""
    inner = prop.items if prop.type in ("array", "map") else prop
    return inner is not None and bool(inner.fields)


def _to_wire(value: Any, prop: d.Prop) -> Any:
    if value is None or not _nested(prop):
        return value
    return pulumi.Output.from_input(value).apply(lambda v: convert({prop.name: v}, (prop,), to_snake=False)[prop.camel])


class _NativeResource(pulumi.CustomResource):
    _TOKEN: ClassVar[str]
    _INPUTS: ClassVar[tuple[d.Prop, ...]]
    _OUTPUTS: ClassVar[tuple[d.Prop, ...]]

    def __init__(
        self,
        resource_name: str,
        *,
        opts: pulumi.ResourceOptions | None = None,
        **inputs: Any,
    ) -> None:
        by_name = {p.name: p for p in self._INPUTS}
        unexpected = sorted(set(inputs) - set(by_name))
        if unexpected:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s): {', '.join(unexpected)}")
        props: dict[str, Any] = {p.camel: _to_wire(inputs.get(p.name), p) for p in self._INPUTS}
        props.update({p.camel: None for p in self._OUTPUTS if p.camel not in props})
        super().__init__(self._TOKEN, resource_name, props, opts)

    def __getattr__(self, name: str) -> pulumi.Output[Any]:
        """``run_id`` for the engine's ``runId``: the SDK sets each property under its wire name."""
        fields = self.__dict__
        wire = d.camel(name)
        if wire != name and wire in fields:
            return fields[wire]  # type: ignore[no-any-return]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def _read(cls, resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None) -> Any:
        resource = cls.__new__(cls)
        props: dict[str, Any] = {p.camel: None for p in (*cls._INPUTS, *cls._OUTPUTS)}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id))
        pulumi.CustomResource.__init__(resource, cls._TOKEN, resource_name, props, opts)
        return resource


class ExperimentRun(_NativeResource):
    """An MLflow run on the ``mlflow-runs`` plugin. Arguments and rules as the dynamic
    ``pulumi_mlflow_runs.ExperimentRun``: ``experiment_id`` (required), ``run_name``, ``start_time``,
    ``end_time``, ``status``, ``params``, ``tags``, ``description``, ``metrics``, ``dataset_inputs``,
    ``model_inputs``, ``model_outputs``, ``artifacts``, ``host``, ``deployment_name``, ``adopt_run_id``.
    Outputs besides those: ``run_id``, ``artifact_uri``, ``lifecycle_stage``, ``user_id``, ``run``,
    ``latest_metrics``, ``stamped_at``, ``artifact_files``."""

    _TOKEN = RUN_TOKEN
    _INPUTS = (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY)
    _OUTPUTS = STATE_OUTPUTS
    FROM_DYNAMIC: ClassVar[pulumi.Alias] = pulumi.Alias(type_="pulumi-python:dynamic/mlflow:ExperimentRun")
    """``opts=pulumi.ResourceOptions(aliases=[ExperimentRun.FROM_DYNAMIC])`` takes over the run of the dynamic
    resource of the same name: the plugin reads it and sends nothing (README, "Moving a stack to the plugin")."""

    @classmethod
    def get(
        cls, resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> ExperimentRun:
        """Read an existing run (by run id) into the program, without managing it."""
        found: ExperimentRun = cls._read(resource_name, id, opts)
        return found


class Experiment(_NativeResource):
    """An MLflow experiment on the ``mlflow-runs`` plugin: ``name`` (required), ``artifact_location``,
    ``tags``, ``host``, ``deployment_name``; outputs ``experiment_id`` and ``lifecycle_stage``."""

    _TOKEN = EXPERIMENT_TOKEN
    _INPUTS = d.EXPERIMENT_INPUTS
    _OUTPUTS = d.EXPERIMENT_OUTPUTS
    FROM_DYNAMIC: ClassVar[pulumi.Alias] = pulumi.Alias(type_="pulumi-python:dynamic/mlflow:Experiment")
    """As ``ExperimentRun.FROM_DYNAMIC``, for the dynamic ``Experiment`` of the same name."""

    @classmethod
    def get(cls, resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> Experiment:
        """Read an existing experiment (by id) into the program, without managing it."""
        found: Experiment = cls._read(resource_name, id, opts)
        return found


class RunTable(_NativeResource):
    """A table of runs in one experiment as one resource, on the ``mlflow-runs`` plugin. Arguments as the dynamic
    ``pulumi_mlflow_runs.RunTable``: ``experiment_id`` (required), ``runs`` (a key you choose to the arguments
    of an ``ExperimentRun`` but the experiment and the connection, in snake_case) or ``runs_file`` (a
    ``pulumi.FileAsset`` of entries, CSV, YAML or JSON, that the plugin reads) or both, ``max_parallel``,
    ``host``, ``deployment_name``. Outputs: ``run_ids``, ``latest_metrics``, ``table_key``, ``run_states``,
    ``retired_run_ids``."""

    _TOKEN = TABLE_TOKEN
    _INPUTS = TABLE_INPUTS
    _OUTPUTS = TABLE_OUTPUTS

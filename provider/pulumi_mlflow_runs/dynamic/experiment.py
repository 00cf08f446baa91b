"""``Experiment``: an MLflow experiment, so that a program declaring runs is self-contained."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from pulumi_mlflow_runs.core.experiment import (
    check_experiment,
    checked_experiment,
    create_experiment,
    delete_experiment,
    diff_experiment,
    read_experiment,
    relocation_failure,
    update_experiment,
)
from pulumi_mlflow_runs.dynamic.provider_base import BaseProvider, fresh_pickler, user_facing


class ExperimentProvider(BaseProvider):
    """The dynamic provider behind ``Experiment``: the rules and requests are ``core.experiment``'s."""

    @user_facing
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        inputs, failures = check_experiment(news)
        relocation = relocation_failure(olds, inputs) if not failures else None
        if relocation is not None:
            failures.append(relocation)
        return dyn.CheckResult(inputs, [dyn.CheckFailure(p, r) for p, r in failures])

    @user_facing
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        replaces, updates = diff_experiment(olds, news)
        return dyn.DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    @user_facing
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        inputs = checked_experiment(props)
        return dyn.CreateResult(*create_experiment(self.api_for(inputs), inputs))

    @user_facing
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        outputs = read_experiment(self.api_for(props), id_, props)
        return dyn.ReadResult("", {}) if outputs is None else dyn.ReadResult(id_, outputs)

    @user_facing
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        inputs = checked_experiment(news)
        return dyn.UpdateResult(update_experiment(self.api_for(inputs), id_, olds, inputs))

    @user_facing
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        delete_experiment(self.api_for(props), id_)


class Experiment(dyn.Resource, module="mlflow", name="Experiment"):
    """An MLflow experiment. Renaming and tags are in-place updates.

    ``artifact_location`` is fixed at creation: changing it is refused unless ``name`` changes too, which
    replaces the experiment (and every run in it).
    """

    experiment_id: pulumi.Output[str]
    """The MLflow experiment id: the resource id, so it stays known in the preview of an update."""
    lifecycle_stage: pulumi.Output[str]
    name: pulumi.Output[str]
    artifact_location: pulumi.Output[str | None]
    tags: pulumi.Output[dict[str, str] | None]
    host: pulumi.Output[str | None]
    deployment_name: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        artifact_location: pulumi.Input[str] | None = None,
        tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        host: pulumi.Input[str] | None = None,
        deployment_name: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Declare an experiment; on Databricks ``name`` is a workspace path like ``/Users/me/exp``."""
        props: dict[str, Any] = {
            "name": name,
            "artifact_location": artifact_location,
            "tags": tags,
            "host": host,
            "deployment_name": deployment_name,
            "experiment_id": None,
            "lifecycle_stage": None,
        }
        fresh_pickler()
        super().__init__(ExperimentProvider(), resource_name, props, opts)
        # The experiment id is the resource id. In the preview of an update the engine hands back only the
        # inputs of a dynamic resource, so an `experiment_id` output would be unknown there and every run in
        # the experiment would preview as a replace; the id of an updated resource stays known.
        self.experiment_id = self.id

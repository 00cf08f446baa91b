"""``mlflow-runs:index:Experiment`` on the plugin: the core's rules and requests (``core.experiment``), as the
dynamic door's ``Experiment`` uses them; the state is the core's outputs as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core import experiment as exp
from pulumi_mlflow_runs.native import diff as detail
from pulumi_mlflow_runs.native.handler import ApiFor, Change, Found, Props, Session
from pulumi_mlflow_runs.native.schema import EXPERIMENT_TOKEN


class ExperimentHandler:
    token = EXPERIMENT_TOKEN
    props = (*d.EXPERIMENT_INPUTS, *d.EXPERIMENT_OUTPUTS)
    computed = d.EXPERIMENT_OUTPUTS

    def check(self, urn: str, news: Props, olds: Mapping[str, Any]) -> tuple[Props, list[tuple[str, str]]]:
        inputs, failures = exp.check_experiment(news)
        if not failures:  # as the dynamic door: the normalized inputs against the old inputs
            relocation = exp.relocation_failure(olds, inputs)
            failures += [relocation] if relocation else []
        return {}, failures

    def diff(self, urn: str, id_: str, olds: Props, old_inputs: Props, news: Props) -> Change:
        replaces, updates = exp.diff_experiment(olds, news)
        changed = [*replaces, *updates]
        if not changed:
            return Change()
        before = old_inputs or olds
        return Change(
            replaces=tuple(replaces),
            diffs=tuple(changed),
            paths=detail.detailed(changed, replaces, before, news),
            old_inputs=before,
        )

    def create(self, api_for: ApiFor, urn: str, props: Props, *, session: Session) -> tuple[str, Props]:
        inputs = exp.checked_experiment(props)
        return exp.create_experiment(api_for(inputs), inputs)

    def read(self, api_for: ApiFor, id_: str, state: Props, stored: Props, *, urn: str) -> Found | None:
        outputs = exp.read_experiment(api_for(state), id_, state)
        if outputs is None:
            return None
        # Without stored inputs (an import, a `.get`), the experiment described as inputs.
        described = {k: outputs.get(k) for k in exp.EXPERIMENT_INPUTS}
        return Found(outputs, None if stored else described)

    def update(
        self, api_for: ApiFor, id_: str, olds: Props, old_inputs: Props, news: Props, *, session: Session
    ) -> Props:
        inputs = exp.checked_experiment(news)
        return exp.update_experiment(api_for(inputs), id_, olds, inputs)

    def delete(self, api_for: ApiFor, id_: str, state: Props, old_inputs: Props) -> None:
        exp.delete_experiment(api_for(state), id_)

    def secret_outputs(self, secret_inputs: set[str]) -> set[str]:
        return secret_inputs  # no output repeats an input under another name

    def partial_state(self, left: Props) -> Props:
        return left

"""An MLflow experiment's rules and lifecycle, for every front door: Check, Diff, create, read, update, delete.

Plain dicts in the normal form ``check_experiment`` gives, and the MLflow client; the front doors wrap the
results in their host's types.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from pulumi_mlflow_runs.core import definitions
from pulumi_mlflow_runs.core import models as m
from pulumi_mlflow_runs.core.client import MlflowApi
from pulumi_mlflow_runs.core.errors import InputError, NotFound, ResourceAlreadyExists
from pulumi_mlflow_runs.core.exactly_once import send_exactly_once
from pulumi_mlflow_runs.core.run_apply import CREATION_TOKEN_TAG
from pulumi_mlflow_runs.core.run_diff import diff_props
from pulumi_mlflow_runs.core.run_spec import _Checker, is_unknown

MAX_EXPERIMENT_NAME_CHARS = 500
EXPERIMENT_INPUTS = tuple(p.name for p in definitions.EXPERIMENT_INPUTS)
EXPERIMENT_OUTPUTS = tuple(p.name for p in definitions.EXPERIMENT_OUTPUTS)


def check_experiment(news: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    c = _Checker()
    out: dict[str, Any] = {}
    for key in sorted(set(news) - set(EXPERIMENT_INPUTS) - set(EXPERIMENT_OUTPUTS) - {"__provider"}):
        c.fail(key, f"is not an input of Experiment (inputs: {', '.join(EXPERIMENT_INPUTS)})")
    for key in EXPERIMENT_INPUTS:
        value = news.get(key)
        if value is None:
            continue
        out[key] = value
        if is_unknown(value):
            continue
        if key == "tags":
            mapping = c.mapping("tags", value)
            tags = {}
            for k, v in (mapping or {}).items():
                if k == CREATION_TOKEN_TAG:
                    c.fail(f"tags.{k}", "is set by the provider itself and cannot be declared")
                    continue
                k_s, v_s = c.name(f"tags.{k}", k, "tag"), c.string(f"tags.{k}", v)
                if k_s is not None and v_s is not None:
                    tags[k_s] = v_s
            out[key] = tags
        elif key in ("host", "deployment_name"):
            c.connection(key, value)
        elif (
            c.string(key, value, allow_empty=False) is not None
            and key == "name"
            and (len(value) > MAX_EXPERIMENT_NAME_CHARS)
        ):
            c.fail(key, f"is {len(value)} characters; the limit is {MAX_EXPERIMENT_NAME_CHARS}")
    if news.get("name") is None:
        c.fail("name", "is required")
    c.one_server(news)
    return out, c.failures


_RELOCATION_REFUSED = (
    "MLflow cannot move an experiment's artifact root: it is fixed when the experiment is created, and each "
    "run keeps the artifact URI it was created with. Nor can a replacement be made: it would need the name "
    "this experiment holds (in the trash too, until it is purged). Nothing was changed; the experiment and "
    "its runs stay as they are. To keep them, set artifact_location back to what it was. To use the new "
    "location, change name together with artifact_location (the experiment is then replaced by a new one "
    "under the new name), or declare a second Experiment and point the runs' experiment_id at it. Either way "
    "every run that moves is replaced: a new run in the new experiment, its params, tags and metrics written "
    "again from the program (artifacts logged to the old run are not copied), and the old run deleted"
)


def relocation_failure(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[str, str] | None:
    """A Check failure for a new ``artifact_location`` under the same name on the same server, else None.

    ``olds`` are the old inputs the engine passes to Check for a resource it already has (empty for a new
    one, and for the second Check of a replacement). Such a change can be neither an update (MLflow has no
    call for it) nor a replace (the new experiment would need the name the old one holds; with
    ``delete_before_replace`` the runs and the experiment would be deleted before that create failed). With
    a value still unknown in preview the refusal waits for ``up``, whose Check runs before any step.
    """
    if not olds.get("name"):
        return None
    keys = ("artifact_location", "name", "host", "deployment_name")
    if any(is_unknown(news.get(key)) for key in keys):
        return None
    if (olds.get("artifact_location") or None) == (news.get("artifact_location") or None):
        return None
    if any((olds.get(key) or None) != (news.get(key) or None) for key in keys[1:]):
        return None  # a new experiment under another name or on another server: a replace that works
    return "artifact_location", _RELOCATION_REFUSED


def diff_experiment(olds: Mapping[str, Any], news: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(replaces, updates)``, by the rules ``definitions.EXPERIMENT_INPUTS`` gives each input."""
    return diff_props(definitions.EXPERIMENT_INPUTS, olds, news)


def experiment_outputs(inputs: Mapping[str, Any], exp: m.Experiment) -> dict[str, Any]:
    outs = {key: inputs.get(key) for key in EXPERIMENT_INPUTS}
    outs.update(experiment_id=exp.experiment_id, lifecycle_stage=exp.lifecycle_stage)
    return outs


def checked_experiment(props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs in normal form, or the first failure raised as an ``InputError``."""
    inputs, failures = check_experiment(props)
    if failures:
        raise InputError(*failures[0])
    return inputs


def create_experiment(api: MlflowApi, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(experiment id, outputs)``; an experiment of the same name in the trash is taken back."""
    req = m.CreateExperiment(
        name=inputs["name"],
        artifact_location=inputs.get("artifact_location"),
        tags=[m.ExperimentTag(key=k, value=v) for k, v in (inputs.get("tags") or {}).items()] or None,
    )
    try:
        experiment_id = _create_once(api, req)
    except ResourceAlreadyExists:
        experiment_id = _reuse_trashed(api, inputs)
    return experiment_id, experiment_outputs(inputs, api.get_experiment(experiment_id))


def read_experiment(api: MlflowApi, experiment_id: str, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outputs as the server has them (managed tags only), or None when the experiment is gone for good."""
    try:
        exp = api.get_experiment(experiment_id)
    except NotFound:
        return None
    fresh = dict(state)
    server_tags = {t.key: t.value for t in exp.tags}
    if state.get("tags") is not None:
        fresh["tags"] = {k: server_tags[k] for k in state["tags"] if k in server_tags}
    fresh["name"] = exp.name
    return experiment_outputs(fresh, exp)


def update_experiment(
    api: MlflowApi, experiment_id: str, olds: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Restore, rename and set or delete tags as ``olds`` (the old outputs) to ``inputs`` needs; the outputs."""
    if olds.get("lifecycle_stage") == "deleted":
        api.restore_experiment(experiment_id)
    if inputs["name"] != olds.get("name"):
        api.update_experiment(m.UpdateExperiment(experiment_id=experiment_id, new_name=inputs["name"]))
    old_tags, new_tags = olds.get("tags") or {}, inputs.get("tags") or {}
    for key, value in new_tags.items():
        if old_tags.get(key) != value:
            api.set_experiment_tag(m.SetExperimentTag(experiment_id=experiment_id, key=key, value=value))
    for key in old_tags:
        if key not in new_tags:
            api.delete_experiment_tag(m.DeleteExperimentTag(experiment_id=experiment_id, key=key))
    return experiment_outputs(inputs, api.get_experiment(experiment_id))


def delete_experiment(api: MlflowApi, experiment_id: str) -> None:
    with contextlib.suppress(NotFound):  # already gone is success
        api.delete_experiment(experiment_id)


def _create_once(api: MlflowApi, req: m.CreateExperiment) -> str:
    """``experiments/create`` once: after an uncertain outcome, look the name up and check for our token.

    A repeat after a lost answer would find the name taken by the experiment the first attempt made,
    and fail. Names are unique, so that experiment is the one holding the name and this create's token
    (a tag that stays on it, as on a run). A name held without the token is someone else's: sending
    again lets the server refuse it, as it would have refused the first attempt.
    """
    token = uuid.uuid4().hex
    tag = m.ExperimentTag(key=CREATION_TOKEN_TAG, value=token)
    req = req.model_copy(update={"tags": [*(req.tags or []), tag]})
    made: list[str] = []

    def remaining(r: m.CreateExperiment) -> m.CreateExperiment | None:
        try:
            existing = api.get_experiment_by_name(r.name)
        except NotFound:
            return r
        if not any(t.key == CREATION_TOKEN_TAG and t.value == token for t in existing.tags):
            return r
        made.append(existing.experiment_id)
        return None

    send_exactly_once(api.transport, req, lambda r: made.append(api.create_experiment(r)), remaining)
    return made[-1]


def _reuse_trashed(api: MlflowApi, inputs: Mapping[str, Any]) -> str:
    """Take back an experiment of the same name from the trash (as after ``destroy`` then ``up``).

    MLflow keeps a deleted experiment's name taken until it is purged. Restoring it also restores every
    run in it, so those runs go straight back to the trash: the program gets its experiment, and no
    run of the old one comes back.
    """
    name = inputs["name"]
    try:
        existing = api.get_experiment_by_name(name)
    except NotFound:
        raise InputError("name", f"an experiment named {name!r} already exists") from None
    if existing.lifecycle_stage != "deleted":
        raise InputError(
            "name",
            f"an experiment named {name!r} already exists (id {existing.experiment_id}) and is active; "
            "choose another name, or use it unmanaged by setting the runs' experiment_id to "
            f"{existing.experiment_id!r} in place of this Experiment, or, to manage it here, delete it (in the "
            f"MLflow UI or with `mlflow experiments delete -x {existing.experiment_id}`; its runs go to the "
            "trash with it) and the next `pulumi up` takes it back from the trash, without its runs",
        )
    wanted = inputs.get("artifact_location")
    if wanted and wanted != existing.artifact_location:
        raise InputError(
            "artifact_location",
            f"the experiment named {name!r} (id {existing.experiment_id}) is in the trash with artifact "
            f"location {existing.artifact_location!r}; purge it (`mlflow gc`) or choose another name",
        )
    experiment_id = existing.experiment_id
    api.restore_experiment(experiment_id)
    revived = m.SearchRuns(experiment_ids=[experiment_id], run_view_type="ACTIVE_ONLY")
    for run in list(api.search_runs(revived)):
        api.delete_run(run.info.run_id)
    for key, value in (inputs.get("tags") or {}).items():
        api.set_experiment_tag(m.SetExperimentTag(experiment_id=experiment_id, key=key, value=value))
    return experiment_id

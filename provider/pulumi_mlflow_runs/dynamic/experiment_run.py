"""``ExperimentRun``: an MLflow run declared as code. The lifecycle reads top to bottom.

The rules (what is an update, what forces a replace, which requests a change needs) live in
``core.run_spec``, ``core.run_diff`` and ``core.run_plan``, the requests in ``core.run_lifecycle``; this
module is the thin adapter between them and the Pulumi dynamic provider host. Check and Diff (every
preview) need only the light rule modules, so the HTTP client and the pydantic models are imported by the
methods that talk to a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pulumi
import pulumi.dynamic as dyn

from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core import state_seen
from pulumi_mlflow_runs.core.artifacts.files import drifted
from pulumi_mlflow_runs.core.definitions import LOGGED_POINTS
from pulumi_mlflow_runs.core.errors import InputError
from pulumi_mlflow_runs.core.limits import normalize_metric_value
from pulumi_mlflow_runs.core.run_diff import diff_run
from pulumi_mlflow_runs.core.run_lifecycle import checked_inputs, now_ms
from pulumi_mlflow_runs.core.run_origin import RunOrigin
from pulumi_mlflow_runs.core.run_spec import (
    ECHOED_IN,
    INPUT_KEYS,
    OUTPUT_KEYS,
    check_inputs,
    is_unknown,
    known_text,
    summary_to_reuse,
)
from pulumi_mlflow_runs.core.state import from_state, with_columns
from pulumi_mlflow_runs.dynamic.elided_assets import as_checked, remember_checked, sendable, tolerate_elided_assets
from pulumi_mlflow_runs.dynamic.provider_base import BaseProvider, fresh_pickler, user_facing

tolerate_elided_assets()  # the engine's Diff request holds assets the SDK's host cannot otherwise read

STATE_OUTPUTS = (*OUTPUT_KEYS, LOGGED_POINTS.name)
"""The outputs this door's state holds: the core's, with every logged point in ``logged_points`` columns
(``core.state``), since Diff is handed only the old outputs."""
_POINTS_AFTER = ("run", "latest_metrics")
ECHOED = {**{k: ECHOED_IN[k] for k in _POINTS_AFTER}, LOGGED_POINTS.name: ("metrics",), **ECHOED_IN}
"""Outputs that repeat inputs under another name (``core.run_spec.ECHOED_IN``), this door's own included, in
the order earlier versions listed them: ``additional_secret_outputs`` is recorded in state in this order."""


def _resolved(props: dict[str, Any]) -> dict[str, Any]:
    """Inputs of a create or update with their assets whole, or an error naming ``artifacts``."""
    props, known = _with_artifacts(props)
    if not known:
        raise InputError("artifacts", "the engine sent the assets without their contents; run `pulumi up` again")
    return props


# ---- what the SDK's provider host does not pass on (see `diff` and `read`) -------------------------------


def _request_props(field: str) -> dict[str, Any] | None:
    """A property map of the engine's request that the SDK's host is serving but does not hand to the
    provider (Diff's ``old_inputs``, Read's ``inputs``); None outside that host or when it is empty."""
    from pulumi.runtime import rpc

    from pulumi_mlflow_runs.dynamic.host_errors import host_call

    found = host_call()
    request = found[1] if found is not None else None
    struct = getattr(request, field, None)
    if struct is None or not getattr(struct, "fields", None):
        return None
    props = rpc.deserialize_properties(struct, True)
    return {k: v for k, v in props.items() if k != "__provider"} if isinstance(props, dict) else None


def _request_urn() -> str | None:
    from pulumi_mlflow_runs.dynamic.host_errors import host_call

    found = host_call()
    urn = getattr(found[1], "urn", None) if found is not None else None
    return urn if isinstance(urn, str) else None


def _with_artifacts(props: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``props`` with the assets Check saw where the engine sent them without content; False if unknown."""
    if props.get("artifacts") is None:
        return props, True
    artifacts, known = as_checked(_request_urn(), props["artifacts"])
    return {**props, "artifacts": artifacts}, known


def _engine_sees(news: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """True if the engine's own diff of the old and new inputs changes each of ``keys``.

    Diff answering "unknown" leaves the verdict to that diff (with ``replaces`` kept): a change this
    provider finds in the outputs but the inputs do not show (a deleted run's restore, drift recorded by
    an older refresh) would be lost, so then the answer stays "some".
    """
    old_inputs = _request_props("old_inputs")
    if old_inputs is None:
        return False
    return all(is_unknown(news.get(k)) or old_inputs.get(k) != news.get(k) for k in keys)


class ExperimentRunProvider(BaseProvider):
    """The dynamic provider behind ``ExperimentRun``. Constructible with no arguments."""

    @user_facing
    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        # Not handed the engine's hash: a metrics file whose bytes still hold the old summary is hashed, not parsed.
        reuse = summary_to_reuse(olds, news, engine_unchanged=False)
        state_seen.checked(known_text(news.get("resource_key")), in_state=bool(olds))
        inputs, failures = check_inputs(news, STATE_OUTPUTS, read_files=True, reuse_summary=reuse)
        if news.get("artifacts") is not None:
            remember_checked(_request_urn(), news["artifacts"])
        return dyn.CheckResult(inputs, [dyn.CheckFailure(prop, reason) for prop, reason in failures])

    @user_facing
    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        state_seen.holds(known_text(news.get("resource_key")) or known_text(olds.get("resource_key")), _id)
        state = from_state(olds)
        news, known = _with_artifacts(news)
        marked = False
        if not known:  # no Check in this host (a refresh): the files are not hashed, only Read's marks count
            marked = drifted(state.get("artifact_files"))
            news["artifacts"], state["artifact_files"] = None, None
        d = diff_run(state, news)
        if marked:  # a file Read found gone or changed: the next `up` sends it again
            d = replace(d, updates=(*d.updates, "artifacts"))
        if not d.changes:
            return dyn.DiffResult(changes=False, replaces=[], delete_before_replace=False)
        # "Unknown" hands the verdict's details to the engine: it diffs the old and new inputs itself, which
        # names the changed properties in the display and lets replace_on_changes / ignore_changes act on
        # them. Only where that diff is sure to show every key this one found; otherwise a plain "some".
        # The engine compares assets by its own hash of the inputs, not by the files this provider stored.
        sees = "artifacts" not in d.updates and _engine_sees(news, (*d.replaces, *d.updates))
        changes = None if sees else True
        return dyn.DiffResult(changes=changes, replaces=list(d.replaces), delete_before_replace=False)

    @user_facing
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        inputs = checked_inputs(_resolved(props), STATE_OUTPUTS)
        held = state_seen.state_runs(inputs.get("resource_key"))
        origin = RunOrigin.of_urn(_request_urn())
        run_id, outputs = lifecycle.create(self.api_for(inputs), inputs, now_ms(), state_runs=held, origin=origin)
        return dyn.CreateResult(run_id, with_columns(outputs))

    @user_facing
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        api = self.api_for(props)
        if "run_id" not in props:  # no state yet: ExperimentRun.get reads the run
            found = lifecycle.read_existing(api, id_)
        else:  # refresh: the engine asks Diff (refreshed outputs as olds, stored inputs as news) about drift
            found = lifecycle.refresh(api, id_, from_state(props), _request_props("inputs"))
        if found is None:
            return dyn.ReadResult("", {})  # gone for good: the engine drops it from state
        return dyn.ReadResult(id_, with_columns(found.outputs), inputs=found.inputs)

    @user_facing
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        inputs = checked_inputs(_resolved(news), STATE_OUTPUTS)
        outputs = lifecycle.update(self.api_for(news), id_, from_state(olds), inputs, now_ms())
        return dyn.UpdateResult(with_columns(outputs))

    @user_facing
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        lifecycle.delete(self.api_for(props), id_)


# ---- the resource ---------------------------------------------------------------------------------------


def _encode_metric_points(points: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """NaN and ±Infinity become MLflow's strings before they reach the engine: state is JSON."""
    if points is None:
        return None
    out = []
    for point in points:
        value = point.get("value")
        encoded = normalize_metric_value(value) if isinstance(value, float) and not math.isfinite(value) else value
        out.append({**point, "value": encoded})
    return out


def _stringify_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Params are strings in MLflow; turn numbers into text here, where 32 is still 32 and not 32.0."""
    if params is None:
        return None
    return {k: (str(v) if isinstance(v, (int, float, bool)) else v) for k, v in params.items()}


class ExperimentRun(dyn.Resource, module="mlflow", name="ExperimentRun"):
    """An MLflow run: name, params, tags, metric points, dataset and model inputs, model outputs.

    Changing ``experiment_id``, ``start_time``, ``host`` or ``deployment_name``, a written param, or an
    already logged metric point / input / output replaces the run (MLflow cannot change those);
    everything else, including appended points, is an in-place update.
    """

    run_id: pulumi.Output[str]
    """The MLflow run id (also the resource id)."""
    artifact_uri: pulumi.Output[str]
    lifecycle_stage: pulumi.Output[str]
    """``active``, or ``deleted`` when the run was deleted outside Pulumi (the next ``up`` restores it)."""
    user_id: pulumi.Output[str]
    run: pulumi.Output[dict[str, Any]]
    """The GetRun view: ``info``, ``data`` (latest metric per key, params, tags), ``inputs``, ``outputs``; the
    params, tags and inputs the program declares are left out (the outputs of the same name hold them)."""
    latest_metrics: pulumi.Output[dict[str, Any]]
    """Latest value per metric key (MLflow's rule: latest timestamp, then the largest value)."""
    logged_points: pulumi.Output[dict[str, dict[str, list[Any]]] | None]
    """Every metric point as logged, in columns per key: ``{key: {"step": [...], "value": [...],
    "timestamp": [...]}}``, plus ``dataset_name``, ``dataset_digest`` or ``model_id`` columns where used.
    Points declared without a timestamp have the one they were logged with here."""
    experiment_id: pulumi.Output[str]
    run_name: pulumi.Output[str | None]
    start_time: pulumi.Output[int | None]
    end_time: pulumi.Output[int | None]
    status: pulumi.Output[str | None]
    params: pulumi.Output[dict[str, str] | None]
    tags: pulumi.Output[dict[str, str] | None]
    description: pulumi.Output[str | None]
    metrics: pulumi.Output[list[dict[str, Any]] | None]
    """The points as the program declares them; ``logged_points`` has them as logged."""
    dataset_inputs: pulumi.Output[list[dict[str, Any]] | None]
    model_inputs: pulumi.Output[list[dict[str, Any]] | None]
    model_outputs: pulumi.Output[list[dict[str, Any]] | None]
    metrics_file: pulumi.Output[Any]
    metrics_file_logged: pulumi.Output[dict[str, Any] | None]
    """How much of ``metrics_file`` is logged: ``{rows, bytes, sha256}`` of its first rows (never the points)."""
    artifact_files: pulumi.Output[dict[str, dict[str, Any]] | None]
    """Every file the ``artifacts`` input put in the run's artifact root, by path:
    ``{sha256, size, uri}`` (an archive has one entry per file). Never the content. An entry without
    ``sha256`` is a file that refresh found gone or changed; the next ``up`` sends it again."""
    host: pulumi.Output[str | None]
    deployment_name: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        experiment_id: pulumi.Input[str],
        run_name: pulumi.Input[str] | None = None,
        start_time: pulumi.Input[int] | None = None,
        end_time: pulumi.Input[int] | None = None,
        status: pulumi.Input[str] | None = None,
        params: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        tags: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        description: pulumi.Input[str] | None = None,
        metrics: pulumi.Input[Sequence[pulumi.Input[Mapping[str, Any]]]] | None = None,
        dataset_inputs: pulumi.Input[Sequence[pulumi.Input[Mapping[str, Any]]]] | None = None,
        model_inputs: pulumi.Input[Sequence[pulumi.Input[Mapping[str, Any]]]] | None = None,
        model_outputs: pulumi.Input[Sequence[pulumi.Input[Mapping[str, Any]]]] | None = None,
        artifacts: pulumi.Input[Mapping[str, pulumi.Asset | pulumi.Archive]] | None = None,
        metrics_file: pulumi.Input[pulumi.FileAsset] | None = None,
        host: pulumi.Input[str] | None = None,
        deployment_name: pulumi.Input[str] | None = None,
        adopt_run_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Declare a run.

        :param experiment_id: the experiment that holds the run (replace on change).
        :param run_name: shown in the MLflow UI.
        :param start_time: ms since the epoch; the server's clock when absent (replace on change).
        :param end_time: ms since the epoch.
        :param status: RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
        :param params: write-once strings; numbers are turned into text. A changed or removed key replaces.
        :param tags: the tags this program manages; tags set by others are left alone.
        :param description: the run's description (the ``mlflow.note.content`` tag).
        :param metrics: points ``{key, value, step=0, timestamp?, dataset_name?, dataset_digest?, model_id?}``;
            values may be NaN or ±Infinity. Appending points is an update that logs only the new ones.
        :param dataset_inputs: ``{dataset: {name, digest, source_type, source, schema?, profile?}, tags}``.
        :param model_inputs: ``{model_id}`` items.
        :param model_outputs: ``{model_id, step}`` items.
        :param artifacts: files for the run's artifact root: ``{"reports/eval.html": pulumi.FileAsset(...)}``;
            a FileArchive of a folder or an AssetArchive lands under its key as a folder. FileAsset,
            StringAsset, FileArchive (folder, zip or tar file) and AssetArchive, on ``mlflow-artifacts:``,
            ``file:`` and Databricks runs' ``dbfs:/databricks/mlflow-tracking`` roots.
            Changed files are uploaded again, removed ones deleted (an update, never a replace).
        :param metrics_file: ``pulumi.FileAsset("curves/train.csv")``: the points a training job wrote, as CSV
            with a header (``key,value,step,timestamp``, and any of ``dataset_name``, ``dataset_digest``,
            ``model_id``) or JSON Lines (``.jsonl``). Rows added at its end are an update that logs only them;
            a change to logged rows replaces the run; a last line without its newline waits. State keeps no
            point of it. May go with ``metrics`` as long as no point is in both.
        :param host: base URL of a workspace or tracking server (overrides stack config and env).
        :param deployment_name: a Databricks workspace ``https://<deployment_name>.cloud.databricks.com``.
        :param adopt_run_id: an existing run (in ``experiment_id``) that the create takes over instead of making
            a new one; it is brought to what the program declares. Refused if that needs a replace. Read only
            when the resource is created: changing or removing it later changes nothing.
        """
        if opts is not None and opts.import_ is not None:
            # The engine's import reads with no state, and the SDK's dynamic host cannot work without it
            # (pulumi/pulumi#16175): fail here with the way that works rather than deep in the host.
            raise pulumi.RunError(
                f"ExperimentRun {resource_name!r}: the import_ option cannot work for a dynamic provider "
                f"(pulumi/pulumi#16175); to take over run {opts.import_} use adopt_run_id={opts.import_!r} "
                "instead of import_"
            )
        inputs: dict[str, Any] = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": start_time,
            "end_time": end_time,
            "status": status,
            "params": _plain(params, _stringify_params),
            "tags": tags,
            "description": description,
            "metrics": _plain(metrics, _encode_metric_points),
            "dataset_inputs": dataset_inputs,
            "model_inputs": model_inputs,
            "model_outputs": model_outputs,
            "artifacts": sendable(artifacts),
            "metrics_file": metrics_file,
            "host": host,
            "deployment_name": deployment_name,
        }
        props = {k: v for k, v in inputs.items() if v is not None}
        if adopt_run_id is not None:
            props["adopt_run_id"] = adopt_run_id
        props["resource_key"] = _resource_key(resource_name, opts)
        props.update({key: None for key in STATE_OUTPUTS})
        props.update({key: None for key in INPUT_KEYS if key not in props})
        opts = pulumi.ResourceOptions.merge(opts, None)  # a copy: the caller's options stay as they were
        opts.additional_secret_outputs = EchoedSecrets(opts.additional_secret_outputs or [], inputs)
        fresh_pickler()
        super().__init__(ExperimentRunProvider(), resource_name, props, opts)

    @classmethod
    def get(
        cls, resource_name: str, id: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None
    ) -> ExperimentRun:
        """Read an existing run (by run id) into the program, without managing it."""
        run = cls.__new__(cls)
        props: dict[str, Any] = {key: None for key in (*INPUT_KEYS, *STATE_OUTPUTS)}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id))
        fresh_pickler()
        dyn.Resource.__init__(run, ExperimentRunProvider(), resource_name, props, opts)
        return run


def _resource_key(name: str, opts: pulumi.ResourceOptions | None) -> pulumi.Input[str]:
    """The same for the same resource of the same stack, whenever the program runs, and the same as the
    plugin's for it (``core.resource_key``: stack, project, the parent's type chain and the name; the program
    never sees its own URN). A create tags its run with it until it has written everything, so the next
    create of this resource after an interrupted ``up`` finds the half-made run instead of leaving it behind,
    on either door.

    The key earlier versions of this program sent follows it in the same input (one line in a preview),
    so a run such a version left half-made is found too. Only here can it be computed for a resource with
    a parent: it hashed the parent's whole URN, which the plugin never sees. A stack made before sent that
    key alone; the input matters only to a create and is never diffed, so the new value shows no change.
    """
    from pulumi_mlflow_runs.core import resource_key

    def keys(parent_urn: str) -> str:
        project, stack = pulumi.get_project(), pulumi.get_stack()
        key = resource_key.of_parts(stack, project, resource_key.parent_types(parent_urn), name)
        return resource_key.as_input(key, [resource_key.legacy_dynamic_key(project, stack, parent_urn, name)])

    return of_parent_urn(opts, keys)


def of_parent_urn(opts: pulumi.ResourceOptions | None, make: Callable[[str], str]) -> pulumi.Input[str]:
    """``make`` of the parent's URN ("" without a parent), once that URN is known."""
    parent = opts.parent if opts is not None else None
    if parent is None:
        return make("")
    urn = parent.urn

    async def from_parent() -> str:
        return make(await urn.future() or "")

    # The parent's URN without a dependency on the parent: an input that depends on a component parent
    # depends on its children, this run among them, and the SDK fails the program on that cycle.
    return pulumi.Output(set(), from_parent(), urn.is_known(), urn.is_secret())


class EchoedSecrets(list[str]):
    """``additional_secret_outputs`` that follow the inputs: ``run`` is secret exactly when an input it repeats is.

    The provider host is handed secrets unwrapped and cannot mark what it returns; the engine keeps an
    output secret only when the input of the same name is, and ``run`` repeats tags, params, metrics and
    the rest under another name. Whether an input is secret is known only once it resolves, so the
    decision is made when the SDK reads this list, which it does after it has awaited every input to
    send them (``register_resource``). An input still unresolved then counts as secret: over-marking
    is safe, a plaintext echo is not. As a plain list (``len``, copies) it holds every candidate.
    """

    def __init__(self, declared: Sequence[str], inputs: Mapping[str, Any]) -> None:
        super().__init__([*declared, *(name for name in ECHOED if name not in declared)])
        self._declared = list(declared)
        self._inputs = inputs

    def __iter__(self) -> Iterator[str]:
        names = list(self._declared)
        for output, keys in ECHOED.items():
            if output not in names and any(_secret_now(self._inputs.get(key)) for key in keys):
                names.append(output)
        return iter(names)


def _secret_now(value: Any) -> bool:
    """Secret, or not resolved yet (and so possibly secret)."""
    if isinstance(value, pulumi.Output):
        data = getattr(value, "_data", None)
        try:
            return not (data is not None and data.done() and data.result().is_secret is False)
        except Exception:  # noqa: BLE001 - unknown internals or a failed output: assume secret
            return True
    if isinstance(value, Mapping):
        return any(_secret_now(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_secret_now(v) for v in value)
    return hasattr(value, "__await__")


def _plain(value: Any, fn: Any) -> Any:
    """Apply ``fn`` now to plain values, or once an Output resolves (keeping secrets and unknowns)."""
    if value is None:
        return None
    if isinstance(value, pulumi.Output) or _holds_output(value):
        return pulumi.Output.from_input(value).apply(fn)
    return fn(value)


def _holds_output(value: Any) -> bool:
    if isinstance(value, (pulumi.Output,)) or hasattr(value, "__await__"):
        return True
    if isinstance(value, Mapping):
        return any(_holds_output(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_output(v) for v in value)
    return False

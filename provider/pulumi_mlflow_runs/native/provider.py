"""The plugin's side of the provider protocol: every call the engine makes, served from the same core as the
dynamic door.

Served on the protocol's own stubs (``provider_pb2_grpc``) rather than ``pulumi.provider.experimental``:
the engine's requests carry what this provider needs and that layer does not pass on (Diff's and
Update's old inputs, which name what a user changed, and Read's stored inputs for a refresh), and the
handshake and ``Attach`` (``PULUMI_DEBUG_PROVIDERS``) are served here too.

Secrets are accepted as secrets: an output is marked secret where the input it repeats is (``run``,
``latestMetrics``, ``loggedPoints`` and ``artifactFiles`` repeat inputs under other names), and the
schema marks the credentials. Check failures name properties in the schema's names and never quote a
value; any other failure is one message with a ``fix:`` line (``core.messages``), never a traceback.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from pulumi_mlflow_runs.core import definitions as d
from pulumi_mlflow_runs.core import experiment as exp
from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core.artifacts.files import drifted
from pulumi_mlflow_runs.core.errors import ConfigurationError, InputError, MlflowRunsError
from pulumi_mlflow_runs.core.messages import describe, resource_of
from pulumi_mlflow_runs.core.run_diff import canonical, diff_run
from pulumi_mlflow_runs.core.run_spec import ECHOED_IN, NOT_ECHOED_KEYS, check_inputs, checked_points
from pulumi_mlflow_runs.core.runtime import Runtime
from pulumi_mlflow_runs.core.settings import StackConfig
from pulumi_mlflow_runs.native import diff as detail
from pulumi_mlflow_runs.native import schema, wire
from pulumi_mlflow_runs.native.config import in_plugin_keys, read_config
from pulumi_mlflow_runs.native.names import camel_path, convert
from pulumi_mlflow_runs.native.state import MOVED_FROM_DYNAMIC, as_uploaded, plugin_state, run_state
from pulumi_mlflow_runs.native.status import partial_failure
from pulumi_mlflow_runs.version import VERSION

R = TypeVar("R")

RUN_PROPS = (*d.RUN_INPUTS, *d.RUN_CREATE_ONLY, *d.RUN_OUTPUTS, d.STAMPED_AT)
"""Every name a run's properties use on the wire: ``logged_points`` too, in a moved dynamic resource's state
and in the state a failed step left (``MlflowRunsError.left_behind``)."""
EXPERIMENT_PROPS = (*d.EXPERIMENT_INPUTS, *d.EXPERIMENT_OUTPUTS)
_SOME, _NONE = provider_pb2.DiffResponse.DIFF_SOME, provider_pb2.DiffResponse.DIFF_NONE


def _type_of(urn: str, type_: str) -> str:
    return type_ or (urn.split("::")[-2] if urn.count("::") >= 3 else "")


def _snake(struct: struct_pb2.Struct | None, props: tuple[d.Prop, ...]) -> tuple[dict[str, Any], set[str]]:
    """A request's properties in the core's names, and which of them (snake_case) held a secret."""
    values, secret = wire.decode(struct)
    values.pop(MOVED_FROM_DYNAMIC, None)
    renamed = convert(values, props, to_snake=True)
    names = {p.camel: p.name for p in props}
    return renamed, {names.get(k, k) for k in secret}


def _camel(values: Mapping[str, Any], props: tuple[d.Prop, ...], secret: set[str]) -> struct_pb2.Struct:
    out = convert(values, props, to_snake=False)
    return wire.encode(out, {d.camel(k) for k in secret})


def _secret_outputs(secret_inputs: set[str]) -> set[str]:
    """The outputs to mark secret: each secret input itself, and every output that repeats one."""
    return secret_inputs | {out for out, keys in ECHOED_IN.items() if secret_inputs & set(keys)}


_STABLE = {"runId", "artifactUri", "userId", "experimentId"}
"""Outputs an update never changes: a preview keeps them known, so dependents preview as they will be."""


def _previewed(news: struct_pb2.Struct, olds: struct_pb2.Struct | Mapping[str, Any], kind: str) -> struct_pb2.Struct:
    """The outputs of a create or update in preview: the new inputs, each computed output unknown but those an
    update keeps. Nothing is sent to the server."""
    out = struct_pb2.Struct()
    out.CopyFrom(news)
    for key in map(d.camel, NOT_ECHOED_KEYS):  # as in real outputs: an SDK cannot read an empty asset back
        if key in out.fields:
            del out.fields[key]
    computed = d.EXPERIMENT_OUTPUTS if kind == schema.EXPERIMENT_TOKEN else d.NATIVE_RUN_OUTPUTS
    old_fields = olds.fields if isinstance(olds, struct_pb2.Struct) else {}
    for prop in computed:
        name = prop.camel
        kept = next((k for k in (name, prop.name) if k in old_fields), None)  # prop.name: moved from dynamic
        if name in _STABLE and kept is not None:
            out.fields[name].CopyFrom(old_fields[kept])
        else:
            out[name] = wire.UNKNOWN
    return out


def _detailed(
    paths: Mapping[str, Any], old_inputs: Mapping[str, Any], news: Mapping[str, Any], props: tuple[d.Prop, ...]
) -> dict[str, Any]:
    """The engine's form of ``paths``. A path whose property the program changed is shown old input against
    new input; one the program did not change (drift that a refresh found, a run deleted outside Pulumi) is
    shown against the state, which is where the difference is."""
    names = {p.camel: p.name for p in props}
    out = {}
    for path, kind in paths.items():
        top = names.get(path.split(".", 1)[0].split("[", 1)[0], "")
        edited = top in news and canonical(old_inputs.get(top)) != canonical(news.get(top))
        out[path] = provider_pb2.PropertyDiff(kind=kind, inputDiff=edited)
    return out


def _unchanged(request: Any, unread: bool = False) -> Any:
    """No change, unless the state is the dynamic door's, or one a failed step left (``unread``): then an
    update that reads the run, sends what it lacks (nothing, for a moved one), and writes the state in the
    plugin's form (``runId``, not ``run_id``)."""
    if unread or MOVED_FROM_DYNAMIC in request.olds.fields:
        return provider_pb2.DiffResponse(changes=_SOME, hasDetailedDiff=True)
    return provider_pb2.DiffResponse(changes=_NONE, hasDetailedDiff=True)


def _resource_key(urn: str) -> str:
    """The same for the same resource of the same stack on every ``up``: a create tags its run with it until
    it has written everything, so the next create after an interrupted ``up`` finishes that run. The core's key
    (the URN without the own type, the dynamic door's key for the same resource), then the keys earlier
    versions gave it, as one ``resource_key`` input (``core.resource_key``)."""
    from pulumi_mlflow_runs.core import resource_key

    return resource_key.input_of_urn(urn)


def _user_facing(action: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Our own errors as one message with a fix line (``core.messages``), a run left part-made reported as
    a partial failure; any other exception is a bug, and reaches the engine as gRPC reports it."""

    def wrap(method: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(method)
        def call(self: Provider, request: Any, context: grpc.ServicerContext) -> R:
            try:
                return method(self, request, context)
            except MlflowRunsError as exc:
                props = getattr(request, "properties", None) or getattr(request, "news", None)
                connection = self.connection_of(props)
                text = describe(exc, action=action, resource=resource_of(request), connection=connection)
                text = in_plugin_keys(text)
                left = exc.left_behind
                if left is not None and action in ("create", "update"):
                    _, secret = _snake(props, RUN_PROPS)
                    state = _camel(left, RUN_PROPS, _secret_outputs(secret))
                    context.abort_with_status(partial_failure(text, str(left["run_id"]), state))
                context.abort(grpc.StatusCode.UNKNOWN, text)
                raise  # abort raises; never reached

        return call

    return wrap


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    """``mlflow-runs``: ``ExperimentRun`` and ``Experiment``, the ``getRun`` / ``searchRuns`` invokes."""

    def __init__(self) -> None:
        self._runtime = Runtime(StackConfig())
        self._lock = threading.Lock()
        self.engine_address: str | None = None

    # ---- plugin and configuration ------------------------------------------------------------------------

    def Handshake(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.engine_address = request.engine_address or None
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=True, accept_resources=True)

    def Attach(self, request: plugin_pb2.PluginAttach, context: grpc.ServicerContext) -> empty_pb2.Empty:
        self.engine_address = request.address  # PULUMI_DEBUG_PROVIDERS: the engine attaches to a running plugin
        return empty_pb2.Empty()

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=VERSION)

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        return provider_pb2.GetSchemaResponse(schema=schema.schema_json())

    def CheckConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        args, _ = wire.decode(request.news)
        failures = []
        try:
            read_config(args)
        except (ConfigurationError, InputError) as exc:
            failures.append(provider_pb2.CheckFailure(property="", reason=in_plugin_keys(str(exc))))
        return provider_pb2.CheckResponse(inputs=request.news, failures=failures)

    def DiffConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        old, _ = wire.decode(request.old_inputs if request.old_inputs.fields else request.olds)
        new, _ = wire.decode(request.news)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return provider_pb2.DiffResponse(changes=_SOME if changed else _NONE, diffs=changed)

    @_user_facing("configure")
    def Configure(self, request: Any, context: grpc.ServicerContext) -> Any:
        args, _ = wire.decode(request.args)
        if not args:  # an older engine sends only `variables`: `mlflow-runs:config:trackingUri` = value
            args = {key.rsplit(":", 1)[-1]: value for key, value in request.variables.items()}
        stack, policy = read_config(args)
        with self._lock:
            self._runtime = Runtime(stack, policy)
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def api(self, props: Mapping[str, Any]) -> Any:
        return self._runtime.api(props.get("host"), props.get("deployment_name"))

    def connection_of(self, struct: struct_pb2.Struct | None) -> Any:
        try:
            values, _ = wire.decode(struct)
        except Exception:  # noqa: BLE001 - only for the message
            return None
        return self._runtime.cached_connection(
            {"host": values.get("host"), "deployment_name": values.get("deploymentName")}
        )

    # ---- resources --------------------------------------------------------------------------------------------

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        kind = _type_of(request.urn, request.type)
        news, _ = _snake(request.news, RUN_PROPS if kind == schema.RUN_TOKEN else EXPERIMENT_PROPS)
        if kind == schema.RUN_TOKEN:
            _, failures = check_inputs(news)
            props = RUN_PROPS
        elif kind == schema.EXPERIMENT_TOKEN:
            inputs, failures = exp.check_experiment(news)
            if not failures:  # as the dynamic door: the normalized inputs against the old inputs
                olds, _ = _snake(request.olds, EXPERIMENT_PROPS)
                relocation = exp.relocation_failure(olds, inputs)
                failures += [relocation] if relocation else []
            props = EXPERIMENT_PROPS
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown resource type {kind!r}")
        # The inputs as sent: the engine keeps them (assets whole, secrets marked); the core normalizes again.
        return provider_pb2.CheckResponse(
            inputs=request.news,
            failures=[provider_pb2.CheckFailure(property=camel_path(p, props), reason=r) for p, r in failures],
        )

    def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
        kind = _type_of(request.urn, request.type)
        if kind == schema.EXPERIMENT_TOKEN:
            return self._diff_experiment(request)
        olds, _ = _snake(request.olds, RUN_PROPS)
        news, _ = _snake(request.news, RUN_PROPS)
        old_inputs, _ = _snake(request.old_inputs, RUN_PROPS)
        state = run_state(olds, old_inputs)
        # Files are compared by the engine's hash of each asset, old inputs against new (no contents here);
        # a file refresh found gone or changed is sent again.
        old_files = as_uploaded(old_inputs.get("artifacts"), state.get("artifact_files"))
        files = detail.artifact_diff(old_files, news.get("artifacts"))
        if not files and drifted(state.get("artifact_files")):
            files = {"artifacts": detail.UPDATE}
        state["artifact_files"], news["artifacts"] = None, None
        checked, failures = check_inputs(news)  # the normal form the state was written from (Check keeps the raw)
        verdict = diff_run(state, news if failures else checked)
        changed = [k for k in (*verdict.replaces, *verdict.updates) if k != "artifacts"]
        paths = detail.detailed(changed, verdict.replaces, {**old_inputs, "lifecycle_stage": None}, news)
        paths.update(files)
        if not paths:
            return _unchanged(request, unread=state.get("run") is None)
        return provider_pb2.DiffResponse(
            changes=_SOME,
            replaces=[d.camel(k) for k in verdict.replaces],
            diffs=sorted({d.camel(k) for k in changed} | ({"artifacts"} if files else set())),
            detailedDiff=_detailed(paths, old_inputs, news, RUN_PROPS),
            hasDetailedDiff=True,
            deleteBeforeReplace=False,
        )

    def _diff_experiment(self, request: Any) -> Any:
        olds, _ = _snake(request.olds, EXPERIMENT_PROPS)
        news, _ = _snake(request.news, EXPERIMENT_PROPS)
        replaces, updates = exp.diff_experiment(olds, news)
        changed = [*replaces, *updates]
        if not changed:
            return _unchanged(request)
        old_inputs, _ = _snake(request.old_inputs, EXPERIMENT_PROPS)
        paths = detail.detailed(changed, replaces, old_inputs or olds, news)
        return provider_pb2.DiffResponse(
            changes=_SOME,
            replaces=[d.camel(k) for k in replaces],
            diffs=sorted(d.camel(k) for k in changed),
            detailedDiff=_detailed(paths, old_inputs or olds, news, EXPERIMENT_PROPS),
            hasDetailedDiff=True,
        )

    @_user_facing("create")
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        kind = _type_of(request.urn, request.type)
        if request.preview:  # what a create will give: the inputs, and what only the server knows unknown
            return provider_pb2.CreateResponse(properties=_previewed(request.properties, {}, kind))
        if kind == schema.EXPERIMENT_TOKEN:
            props, secret = _snake(request.properties, EXPERIMENT_PROPS)
            inputs = exp.checked_experiment(props)
            experiment_id, outputs = exp.create_experiment(self.api(inputs), inputs)
            return provider_pb2.CreateResponse(id=experiment_id, properties=_camel(outputs, EXPERIMENT_PROPS, secret))
        props, secret = _snake(request.properties, RUN_PROPS)
        inputs = lifecycle.checked_inputs(props)
        inputs["resource_key"] = _resource_key(request.urn)
        declared = list(inputs.get("metrics") or [])
        run_id, outputs = lifecycle.create(self.api(inputs), inputs, lifecycle.now_ms())
        state = plugin_state(outputs, declared, inputs.get("metrics"))
        return provider_pb2.CreateResponse(id=run_id, properties=_camel(state, RUN_PROPS, _secret_outputs(secret)))

    @_user_facing("read")
    def Read(self, request: Any, context: grpc.ServicerContext) -> Any:
        kind = _type_of(request.urn, request.type)
        if kind == schema.EXPERIMENT_TOKEN:
            state, secret = _snake(request.properties, EXPERIMENT_PROPS)
            outputs = exp.read_experiment(self.api(state), request.id, state)
            if outputs is None:
                return provider_pb2.ReadResponse(id="")
            described = {k: outputs.get(k) for k in exp.EXPERIMENT_INPUTS}
            return provider_pb2.ReadResponse(
                id=request.id,
                properties=_camel(outputs, EXPERIMENT_PROPS, secret),
                inputs=request.inputs if request.inputs.fields else _camel(described, EXPERIMENT_PROPS, set()),
            )
        state, secret = _snake(request.properties, RUN_PROPS)
        stored, stored_secret = _snake(request.inputs, RUN_PROPS)
        api = self.api(state or stored)
        logged: list[Any] | None
        whole = "logged_points" in state
        if not state:  # `pulumi import` or a `.get`: no state yet, the run described as inputs
            found = lifecycle.read_existing(api, request.id)
            declared = logged = list(((found.inputs or {}).get("metrics") or []) if found else [])
        else:
            olds = run_state(state, stored)
            declared, logged = checked_points(stored.get("metrics")) or [], olds.get("metrics")
            # Unread (a failed step's, or stamps that do not fit): the refresh reads every point from the
            # server, and what a failed step logged need not fit the stored inputs.
            whole = whole or olds.get("run") is None
            found = lifecycle.refresh(api, request.id, olds, stored or None)
        if found is None:
            return provider_pb2.ReadResponse(id="")  # gone for good: the engine drops it from state
        # A state that holds every logged point (moved, or read whole) keeps that form until an update.
        outputs = found.outputs if whole else plugin_state(found.outputs, declared, logged)
        inputs = (
            _camel(found.inputs, RUN_PROPS, stored_secret)
            if found.inputs is not None
            else request.inputs  # assets without their contents cannot be handed back: kept as stored
        )
        return provider_pb2.ReadResponse(
            id=request.id,
            properties=_camel(outputs, RUN_PROPS, _secret_outputs(secret | stored_secret)),
            inputs=inputs,
        )

    @_user_facing("update")
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        kind = _type_of(request.urn, request.type)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=_previewed(request.news, request.olds, kind))
        props = EXPERIMENT_PROPS if kind == schema.EXPERIMENT_TOKEN else RUN_PROPS
        olds, _ = _snake(request.olds, props)
        news, secret = _snake(request.news, props)
        if kind == schema.EXPERIMENT_TOKEN:
            inputs = exp.checked_experiment(news)
            outputs = exp.update_experiment(self.api(inputs), request.id, olds, inputs)
            return provider_pb2.UpdateResponse(properties=_camel(outputs, props, secret))
        old_inputs, _ = _snake(request.old_inputs, props)
        inputs = lifecycle.checked_inputs(news)
        declared = list(inputs.get("metrics") or [])
        state = run_state(olds, old_inputs)
        outputs = lifecycle.update(self.api(inputs), request.id, state, inputs, lifecycle.now_ms())
        outputs = plugin_state(outputs, declared, inputs.get("metrics"))
        return provider_pb2.UpdateResponse(properties=_camel(outputs, props, _secret_outputs(secret)))

    @_user_facing("delete")
    def Delete(self, request: Any, context: grpc.ServicerContext) -> empty_pb2.Empty:
        kind = _type_of(request.urn, request.type)
        props, _ = _snake(request.properties, EXPERIMENT_PROPS if kind == schema.EXPERIMENT_TOKEN else RUN_PROPS)
        if kind == schema.EXPERIMENT_TOKEN:
            exp.delete_experiment(self.api(props), request.id)
        else:
            lifecycle.delete(self.api(props), request.id)
        return empty_pb2.Empty()

    # ---- functions ------------------------------------------------------------------------------------------

    def Invoke(self, request: Any, context: grpc.ServicerContext) -> Any:
        from pulumi_mlflow_runs.core import search

        props = schema.GET_RUN_INPUTS if request.tok == schema.GET_RUN_TOKEN else schema.SEARCH_RUNS_INPUTS
        args, _ = _snake(request.args, props)
        try:
            api = self.api(args)
            if request.tok == schema.GET_RUN_TOKEN:
                result: dict[str, Any] = _run_result(api.get_run(search.checked_run_id(args.get("run_id"))))
            elif request.tok == schema.SEARCH_RUNS_TOKEN:
                req = search.search_request(
                    args.get("experiment_ids"),
                    args.get("filter"),
                    args.get("order_by"),
                    args.get("max_results"),
                    args.get("run_view_type") or "ACTIVE_ONLY",
                )
                result = {"runs": [_run_result(run) for run in search.iter_search_runs(api, req)]}
            else:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown function {request.tok!r}")
        except InputError as exc:
            failure = provider_pb2.CheckFailure(property=camel_path(exc.prop, props), reason=exc.reason)
            return provider_pb2.InvokeResponse(failures=[failure])
        except MlflowRunsError as exc:
            context.abort(grpc.StatusCode.UNKNOWN, in_plugin_keys(describe(exc, action="read", resource=None)))
        response = provider_pb2.InvokeResponse()
        getattr(response, "return").CopyFrom(wire.encode(result))  # a keyword Python cannot spell
        return response

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()  # calls under way finish or fail within the retry deadline


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
